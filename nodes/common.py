"""What every DisPose node shares: socket types, the schema frame, model-file inputs, run guard.

Nodes use ComfyUI's V3 schema (``comfy_api.latest``): each is an ``io.ComfyNode`` whose
``define_schema`` ComfyUI calls again for every /object_info and every validation, so the model
dropdowns list what is on disk now. Node ids, input names, defaults and input order are those of
the first (V1) release: saved UI workflows store widget values by position and API prompts by name.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from comfy_api.latest import io

from ..dispose_core.errors import DeviceMemoryError, ModelFileError
from ..dispose_core.loading.layout import BY_KEY
from ..dispose_core.pipeline import find_model_file
from . import comfy_bridge as bridge

CATEGORY = "DisPose"
SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets go up to 2^64 - 1
OUT_OF_MEMORY_ADVICE = ("Memory grows with the canvas area times the number of frames: lower resolution or max_frames "
                        "in DWPose Extract, or a smaller batch_size where the node has one; or start ComfyUI with "
                        "--lowvram / --reserve-vram")

Poses = io.Custom("DISPOSE_POSES")
Motion = io.Custom("DISPOSE_MOTION")
Flow = io.Custom("DISPOSE_FLOW")
Points = io.Custom("DISPOSE_POINTS")
Control = io.Custom("DISPOSE_CONTROL")
MimicMotionModel = io.Custom("MIMICMOTION_MODEL")
DWPoseModel = io.Custom("DWPOSE_MODEL")
CMPModel = io.Custom("CMP_MODEL")
DIFTModel = io.Custom("DIFT_MODEL")
DisPoseControlNet = io.Custom("DISPOSE_CONTROLNET")
PoseKeypoint = io.Custom("POSE_KEYPOINT")  # comfyui_controlnet_aux's type


def schema(node_id: str, display_name: str, description: str, inputs: list, outputs: list) -> io.Schema:
    """The schema of one of our nodes (all under the DisPose menu)."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
                     inputs=inputs, outputs=outputs)


def model_input(name: str, key: str, tooltip: str, extra: list[str] | None = None) -> io.Combo.Input:
    """A dropdown of the files (or diffusers folders) found for one MODEL_FILES entry, then ``extra``.

    The expected name is always offered (first, as the default) so that a fresh install shows
    what to download, and running with it missing gives our message with the download page.
    """
    model = BY_KEY[key]
    found = bridge.list_models(model.folder, want_dirs=model.is_dir)
    options = [model.name] + [f for f in found if f != model.name] + (extra or [])
    return io.Combo.Input(name, options=options, default=model.name,
                          tooltip=f"{tooltip} Looked up in models/{model.folder}/ (and extra_model_paths.yaml).")


def model_path(key: str, name: str) -> Path:
    """Full path of the chosen file; ModelFileError naming file, folders and source if missing."""
    return find_model_file(key, bridge.folder_dirs(BY_KEY[key].folder), name)


SINGLE_FILE = f"{bridge.CHECKPOINTS}/"  # prefix of single-file choices in a folder-or-file dropdown


def folder_or_single_file_input(name: str, key: str, tooltip: str, suffixes: tuple[str, ...]) -> io.Combo.Input:
    """Diffusers folders of the ``key`` entry, then single files from models/checkpoints (as
    ``checkpoints/<file>``, only names ending in one of ``suffixes``)."""
    files = [f for f in bridge.list_models(bridge.CHECKPOINTS) if f.lower().endswith(suffixes)]
    return model_input(name, key, f"{tooltip} A single file from models/{bridge.CHECKPOINTS}/ is shown as "
                                  f"{SINGLE_FILE}<file>.", extra=[SINGLE_FILE + f for f in files])


def folder_or_single_file_path(key: str, choice: str, what: str) -> Path:
    """Path of the chosen diffusers folder or ``checkpoints/<file>``; ModelFileError naming where we looked."""
    if not choice.startswith(SINGLE_FILE):
        return model_path(key, choice)
    name = choice[len(SINGLE_FILE):]
    found = bridge.find_model(bridge.CHECKPOINTS, name)
    if found is None:
        searched = ", ".join(bridge.folder_dirs(bridge.CHECKPOINTS)) or f"models/{bridge.CHECKPOINTS}"
        raise ModelFileError(f"{what} '{name}' not found in {searched}. Put it into "
                             f"ComfyUI/models/{bridge.CHECKPOINTS}/ or use the diffusers folder "
                             f"{BY_KEY[key].name} from {BY_KEY[key].source}.")
    return Path(found)


def reference_input() -> io.Image.Input:
    return io.Image.Input("reference_image", tooltip="The same reference image as for DWPose Extract.")


def poses_input() -> io.Input:
    return Poses.Input("poses", tooltip="Poses from DWPose Extract.")


def precision_input() -> io.Combo.Input:
    return io.Combo.Input("precision", options=list(bridge.PRECISIONS), default="auto",
                          tooltip="Weights/compute dtype. auto: what ComfyUI picks for this device "
                                  "(fp16/bf16 on GPUs, fp32 on CPU).")


def advanced(widget: io.Input) -> io.Input:
    """Mark an input advanced (newer frontends fold it away). Set through ``extra_dict``: ComfyUI
    0.3.64's widget inputs take no ``advanced`` argument, 0.33.0's serialise this key the same way."""
    widget.extra_dict = {**widget.extra_dict, "advanced": True}
    return widget


def working_memory(batch: int, height: int, width: int, models: list[bridge.Managed]) -> int:
    """Bytes of activations to keep free when loading a UNet-like model for ``batch`` images of
    ``height`` x ``width`` pixels: ComfyUI's own estimate for diffusion models with SDPA attention
    (``BaseModel.memory_required``: latent area x dtype size x 0.01 MiB), per model run at once."""
    dtype_size = next(models[0].modules.parameters()).element_size()
    area = batch * (height // 8) * (width // 8)
    return int(area * dtype_size * 0.01 * len(models) * 1024 * 1024)


@contextmanager
def stage() -> Iterator[None]:
    """Run a node's work; on any failure (an interrupt included) release cached device memory. Running
    out of memory, on the CPU or a device, becomes a DeviceMemoryError saying what to lower (the
    sampler's phases give their own advice first)."""
    try:
        yield
    except BaseException as exc:
        bridge.free_memory()
        if bridge.is_out_of_memory(exc):
            raise DeviceMemoryError(f"Out of memory ({str(exc).splitlines()[0]}). {OUT_OF_MEMORY_ADVICE}") from exc
        raise
