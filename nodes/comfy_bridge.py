"""The one place the pack reaches into ComfyUI's internals (``comfy.*``, ``folder_paths``).

It hands out ComfyUI's model folders, devices, dtypes, model management, progress bars and
interrupt checks; the nodes go through these functions only. Outside ComfyUI the library
(``dispose_core``, the demo) needs none of this; the tests import ComfyUI in-process.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, Callable

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from ..dispose_core.loading.layout import MODEL_FOLDERS

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHECKPOINTS = "checkpoints"  # ComfyUI's folder of single-file checkpoints (SD 1.5 for DIFT)


# ------------------------------------------------------------------ model folders
def register_model_folders() -> None:
    """Add our folders under ComfyUI's models dir, keeping paths from extra_model_paths.yaml.

    ``add_model_folder_path`` appends to an existing entry (the yaml is read before packs are
    imported); a folder it creates has an empty extension set, which lists every file.
    """
    for folder in MODEL_FOLDERS:
        folder_paths.add_model_folder_path(folder, os.path.join(folder_paths.models_dir, folder))


def folder_dirs(folder: str) -> list[str]:
    """Every directory searched for ``folder`` (ComfyUI's list incl. extra_model_paths.yaml)."""
    return folder_paths.get_folder_paths(folder)


def list_models(folder: str, want_dirs: bool = False) -> list[str]:
    """File names (or, for diffusers folders, sub-folder names) found in ``folder``, sorted."""
    if not want_dirs:
        return sorted(folder_paths.get_filename_list(folder))
    found: set[str] = set()
    for base in folder_dirs(folder):
        if not os.path.isdir(base):
            continue
        for entry in os.listdir(base):
            if os.path.isdir(os.path.join(base, entry)) == want_dirs:
                found.add(entry)
    return sorted(found)


def find_model(folder: str, name: str) -> str | None:
    """Full path of ``name`` in the first search directory of ``folder`` that has it."""
    for base in folder_dirs(folder):
        path = os.path.join(base, name)
        if os.path.exists(path):
            return path
    return None


# ------------------------------------------------------------------ devices and dtypes
def torch_device() -> torch.device:
    return mm.get_torch_device()


def intermediate_device() -> torch.device:
    """Where tensors passed between nodes live (CPU unless ComfyUI runs --gpu-only)."""
    return mm.intermediate_device()


def pick_dtype(precision: str, supported: tuple[torch.dtype, ...] = tuple(_DTYPES.values())) -> torch.dtype:
    """Resolve a precision choice; ``auto`` asks ComfyUI what the compute device handles best."""
    if precision != "auto":
        return _DTYPES[precision]
    return mm.unet_dtype(torch_device(), supported_dtypes=list(supported))


def onnx_providers() -> list[str] | None:
    """onnxruntime providers for DWPose: CPU when ComfyUI computes on the CPU (--cpu), else None,
    which lets DWPose use CUDA when the installed onnxruntime build has it."""
    return ["CPUExecutionProvider"] if torch_device().type == "cpu" else None


# ------------------------------------------------------------------ model management
@dataclass
class Managed:
    """A core model object plus the torch modules ComfyUI moves between devices for it.

    ``patcher`` is the ComfyUI ``ModelPatcher`` of ``modules`` (the object ``load_models_gpu``
    understands).
    """

    value: Any
    modules: torch.nn.Module
    patcher: comfy.model_patcher.ModelPatcher


def manage(value: Any) -> Managed:
    """Wrap a loaded model (a module, or an object holding modules) so ComfyUI accounts for its
    weights and can offload it when another stage needs the memory."""
    # A container of our own: ModelPatcher sets bookkeeping attributes (``device`` among them) on
    # the module it manages, which must not clash with the core modules' own ``device`` property.
    if isinstance(value, torch.nn.Module):
        modules = torch.nn.ModuleDict({"model": value})
    else:
        modules = torch.nn.ModuleDict(
            {k: v for k, v in vars(value).items() if isinstance(v, torch.nn.Module)})
    patcher = comfy.model_patcher.ModelPatcher(
        modules, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return Managed(value, modules, patcher)


def load_to_device(models: list[Managed], memory_required: int = 0) -> torch.device:
    """Make room (offloading other models, e.g. CMP/DIFT before the sampler) and load ``models``.

    Plain torch layers cannot be partially loaded, so the load is a full one; ComfyUI still frees
    everything else first, which is what low-VRAM modes rely on.
    """
    mm.load_models_gpu([m.patcher for m in models], memory_required=memory_required, force_full_load=True)
    return mm.get_torch_device()


def free_memory() -> None:
    """Release cached device memory (after a stage, and after an interruption)."""
    gc.collect()
    mm.soft_empty_cache()


# ------------------------------------------------------------------ progress and interrupts
def should_stop() -> bool:
    """Interrupt point for the core's loops: raises ComfyUI's interrupt exception when a user
    pressed Cancel (or POST /interrupt); False otherwise."""
    mm.throw_exception_if_processing_interrupted()
    return False


def progress_bar(total: int = 1) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives ComfyUI's progress bar for this node."""
    bar = comfy.utils.ProgressBar(total)
    return lambda done, total: bar.update_absolute(done, total)
