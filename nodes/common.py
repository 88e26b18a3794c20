"""What every DisPose node shares: socket type names, the category, model-file inputs, run guard.

Nodes use ComfyUI's classic class-attribute API (INPUT_TYPES / RETURN_TYPES / FUNCTION): those
classes are plain Python, so CI (no ComfyUI) can check each node's inputs and call its function
on the tiny models; the V3 ``io.ComfyNode`` base class would need ComfyUI to even define them.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..dispose_core.loading.layout import BY_KEY
from ..dispose_core.pipeline import find_model_file
from . import comfy_bridge as bridge

CATEGORY = "DisPose"

POSES = "DISPOSE_POSES"
MOTION = "DISPOSE_MOTION"
FLOW = "DISPOSE_FLOW"
POINTS = "DISPOSE_POINTS"
CONTROL = "DISPOSE_CONTROL"
MIMICMOTION_MODEL = "MIMICMOTION_MODEL"
DWPOSE_MODEL = "DWPOSE_MODEL"
CMP_MODEL = "CMP_MODEL"
DIFT_MODEL = "DIFT_MODEL"
DISPOSE_CONTROLNET = "DISPOSE_CONTROLNET"
POSE_KEYPOINT = "POSE_KEYPOINT"  # comfyui_controlnet_aux's type


def model_input(key: str, tooltip: str) -> tuple:
    """A dropdown of the files (or diffusers folders) found for one MODEL_FILES entry.

    The expected name is always offered (first, as the default) so that a fresh install shows
    what to download, and running with it missing gives our message with the download page.
    """
    model = BY_KEY[key]
    found = bridge.list_models(model.folder, want_dirs=model.is_dir)
    options = [model.name] + [f for f in found if f != model.name]
    return (options, {"default": model.name,
                      "tooltip": f"{tooltip} Looked up in models/{model.folder}/ (and extra_model_paths.yaml)."})


def model_path(key: str, name: str) -> Path:
    """Full path of the chosen file; ModelFileError naming file, folders and source if missing."""
    return find_model_file(key, bridge.folder_dirs(BY_KEY[key].folder), name)


def reference_input() -> tuple:
    return ("IMAGE", {"tooltip": "The same reference image as for DWPose Extract."})


def poses_input() -> tuple:
    return (POSES, {"tooltip": "Poses from DWPose Extract."})


def precision_input() -> tuple:
    return (list(bridge.PRECISIONS), {
        "default": "auto",
        "tooltip": "Weights/compute dtype. auto: what ComfyUI picks for this device "
                   "(fp16/bf16 on GPUs, fp32 on CPU).",
    })


def working_memory(batch: int, height: int, width: int, models: list[bridge.Managed]) -> int:
    """Bytes of activations to keep free when loading a UNet-like model for ``batch`` images of
    ``height`` x ``width`` pixels: ComfyUI's own estimate for diffusion models with SDPA attention
    (``BaseModel.memory_required``: latent area x dtype size x 0.01 MiB), per model run at once."""
    dtype_size = next(models[0].modules.parameters()).element_size()
    area = batch * (height // 8) * (width // 8)
    return int(area * dtype_size * 0.01 * len(models) * 1024 * 1024)


@contextmanager
def stage() -> Iterator[None]:
    """Run a node's work; on any failure (an interrupt included) release cached device memory."""
    try:
        yield
    except BaseException:
        bridge.free_memory()
        raise


class DisposeNode:
    """Shared class attributes of our nodes."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
