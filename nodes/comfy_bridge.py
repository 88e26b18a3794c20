"""The only module of the pack that imports ComfyUI (``comfy.*``, ``folder_paths``).

Inside ComfyUI it hands out ComfyUI's model folders, devices, dtypes, model management, progress
bars and interrupt checks. Without ComfyUI (CI, the demo) it falls back to the plain behaviour a
script would have: folders set with :func:`set_model_dirs`, CPU, no progress, never interrupted,
models used where they are. Everything else in ``nodes/`` goes through these functions, so the
node functions run unchanged in both worlds.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..dispose_core.loading.layout import MODEL_FOLDERS

try:
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils
    import folder_paths
except ImportError:  # not running inside ComfyUI
    mm = None
    folder_paths = None

IN_COMFY = mm is not None
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHECKPOINTS = "checkpoints"  # ComfyUI's folder of single-file checkpoints (SD 1.5 for DIFT)
_fallback_dirs: dict[str, list[str]] = {}


# ------------------------------------------------------------------ model folders
def register_model_folders() -> None:
    """Add our folders under ComfyUI's models dir, keeping paths from extra_model_paths.yaml.

    ``add_model_folder_path`` appends to an existing entry (the yaml is read before packs are
    imported); a folder it creates has an empty extension set, which lists every file.
    """
    if not IN_COMFY:
        return
    for folder in MODEL_FOLDERS:
        folder_paths.add_model_folder_path(folder, os.path.join(folder_paths.models_dir, folder))


def set_model_dirs(models_dir: str | os.PathLike) -> None:
    """Outside ComfyUI: use ``models_dir/<folder>`` for every model folder (tests, the demo)."""
    for folder in MODEL_FOLDERS + (CHECKPOINTS,):
        _fallback_dirs[folder] = [os.path.join(os.fspath(models_dir), folder)]


def folder_dirs(folder: str) -> list[str]:
    """Every directory searched for ``folder`` (ComfyUI's list incl. extra_model_paths.yaml)."""
    if IN_COMFY:
        return folder_paths.get_folder_paths(folder)
    return list(_fallback_dirs.get(folder, []))


def list_models(folder: str, want_dirs: bool = False) -> list[str]:
    """File names (or, for diffusers folders, sub-folder names) found in ``folder``, sorted."""
    if IN_COMFY and not want_dirs:
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
    return mm.get_torch_device() if IN_COMFY else torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where tensors passed between nodes live (CPU unless ComfyUI runs --gpu-only)."""
    return mm.intermediate_device() if IN_COMFY else torch.device("cpu")


def pick_dtype(precision: str, supported: tuple[torch.dtype, ...] = tuple(_DTYPES.values())) -> torch.dtype:
    """Resolve a precision choice; ``auto`` asks ComfyUI what the compute device handles best."""
    if precision != "auto":
        return _DTYPES[precision]
    if not IN_COMFY:
        return torch.float32
    return mm.unet_dtype(torch_device(), supported_dtypes=list(supported))


def onnx_providers() -> list[str] | None:
    """onnxruntime providers for DWPose: CPU when ComfyUI computes on the CPU (--cpu), else None,
    which lets DWPose use CUDA when the installed onnxruntime build has it."""
    return ["CPUExecutionProvider"] if torch_device().type == "cpu" else None


# ------------------------------------------------------------------ model management
@dataclass
class Managed:
    """A core model object plus the torch modules ComfyUI moves between devices for it.

    ``patcher`` is a ComfyUI ``ModelPatcher`` inside ComfyUI (the object ``load_models_gpu``
    understands), else ``None``.
    """

    value: Any
    modules: torch.nn.Module
    patcher: Any = None


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
    patcher = None
    if IN_COMFY:
        patcher = comfy.model_patcher.ModelPatcher(
            modules, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return Managed(value, modules, patcher)


def load_to_device(models: list[Managed], memory_required: int = 0) -> torch.device:
    """Make room (offloading other models, e.g. CMP/DIFT before the sampler) and load ``models``.

    Plain torch layers cannot be partially loaded, so the load is a full one; ComfyUI still frees
    everything else first, which is what low-VRAM modes rely on.
    """
    if not IN_COMFY:
        return next(models[0].modules.parameters()).device
    mm.load_models_gpu([m.patcher for m in models], memory_required=memory_required, force_full_load=True)
    return mm.get_torch_device()


def free_memory() -> None:
    """Release cached device memory (after a stage, and after an interruption)."""
    gc.collect()
    if IN_COMFY:
        mm.soft_empty_cache()


# ------------------------------------------------------------------ progress and interrupts
def should_stop() -> bool:
    """Interrupt point for the core's loops: raises ComfyUI's interrupt exception when a user
    pressed Cancel (or POST /interrupt). Outside ComfyUI nothing interrupts."""
    if IN_COMFY:
        mm.throw_exception_if_processing_interrupted()
    return False


def progress_bar(total: int = 1) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives ComfyUI's progress bar for this node."""
    if not IN_COMFY:
        return lambda done, total: None
    bar = comfy.utils.ProgressBar(total)
    return lambda done, total: bar.update_absolute(done, total)
