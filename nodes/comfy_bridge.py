"""The one place the pack reaches into ComfyUI's internals (``comfy.*``, ``folder_paths``).

It hands out ComfyUI's model folders, devices, dtypes, layer classes and attention (``model_ops``),
model management, progress bars and interrupt checks; the nodes go through these functions only.
Outside ComfyUI the library (``dispose_core``, the demo) needs none of this; the tests import
ComfyUI in-process.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import comfy.ldm.modules.attention
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args

from ..dispose_core import limits
from ..dispose_core.loading.layout import MODEL_FOLDERS
from ..dispose_core.models.cast_layers import FP8, place_other_tensors, set_placement
from ..dispose_core.models.layer_ops import ModelOps

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
WEIGHT_DTYPES = ("default", "fp8_e4m3fn")  # storage of the UNet and ControlNet weights
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
    """Resolve a precision choice; ``auto`` asks ComfyUI what the compute device handles best (under
    ``--fp8_*-unet`` that is a storage dtype: then the dtype ComfyUI computes such weights in)."""
    if precision != "auto":
        return _DTYPES[precision]
    dtype = mm.unet_dtype(torch_device(), supported_dtypes=list(supported))
    if dtype.itemsize == 1:
        dtype = mm.unet_manual_cast(dtype, torch_device(), list(supported)) or torch.float32
    return dtype


def fp8_weights(weight_dtype: str) -> bool:
    """Store the UNet and ControlNet weights in float8_e4m3fn: the loader's ``weight_dtype`` option,
    or ComfyUI's ``--fp8_e4m3fn-unet`` flag."""
    return weight_dtype == "fp8_e4m3fn" or bool(args.fp8_e4m3fn_unet)


def model_ops(compute_dtype: torch.dtype, fp8: bool = False) -> ModelOps:
    """What our UNet, PoseNet and ControlNet are built with inside ComfyUI: the ``comfy.ops`` layers
    core models get for these weight and compute dtypes (casting, fp8, partial loading and LoRA
    patches by ComfyUI's rules), ``optimized_attention`` (``--use-sage-attention``,
    ``--use-flash-attention``, ``--use-pytorch-cross-attention``) and Cancel, checked before each
    layer of the blocks."""
    operations = comfy.ops.pick_operations(FP8 if fp8 else compute_dtype, compute_dtype, load_device=torch_device())
    return ModelOps(operations, comfy.ldm.modules.attention.optimized_attention, should_stop)


def onnx_providers() -> list[str] | None:
    """onnxruntime providers for DWPose: CPU when ComfyUI computes on the CPU (--cpu), else None,
    which lets DWPose use CUDA when the installed onnxruntime build has it."""
    return ["CPUExecutionProvider"] if torch_device().type == "cpu" else None


# ------------------------------------------------------------------ model management
@dataclass
class Managed:
    """A core model object plus the torch modules ComfyUI moves between devices for it.

    ``patcher`` is the ComfyUI ``ModelPatcher`` of ``modules`` (the object ``load_models_gpu``
    understands). ``castable``: built with ``model_ops`` (``comfy.ops`` layers), so ComfyUI may load
    the model partially (its low-VRAM path) and the layers left on the offload device still run.
    ``loads_itself``: one of ComfyUI's own models, loaded by its own calls; we only unload it.
    """

    value: Any
    modules: torch.nn.Module
    patcher: comfy.model_patcher.ModelPatcher
    castable: bool = False
    loads_itself: bool = False  # a ComfyUI model whose own calls (VAE.encode/decode) load it


def manage(value: Any, castable: bool = False) -> Managed:
    """Wrap a loaded model (a module, or an object holding modules) so ComfyUI accounts for its
    weights and can offload it when another stage needs the memory; ``castable``: it was built with
    ``model_ops``, so ComfyUI may load it partially."""
    # A container of our own: ModelPatcher sets bookkeeping attributes (``device`` among them) on
    # the module it manages, which must not clash with the core modules' own ``device`` property.
    if isinstance(value, torch.nn.Module):
        modules = torch.nn.ModuleDict({"model": value})
    else:
        modules = torch.nn.ModuleDict(
            {k: v for k, v in vars(value).items() if isinstance(v, torch.nn.Module)})
    patcher = comfy.model_patcher.ModelPatcher(
        modules, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return Managed(value, modules, patcher, castable)


def manage_core(value: Any, core: Any) -> Managed:
    """``value`` (what the sampler calls) computing with ComfyUI's model ``core`` (a core VAE or
    CLIP_VISION), managed through ComfyUI's own patcher of it."""
    return Managed(value, core.patcher.model, core.patcher, loads_itself=True)


def load_to_device(models: list[Managed], memory_required: int = 0) -> torch.device:
    """Make room (offloading other models, e.g. CMP/DIFT before the sampler) and load ``models``.

    When all of them are ``castable``, ComfyUI decides how much to load: fully where they fit beside
    ``memory_required``, partially otherwise (``--lowvram``, ``--novram``, ``--reserve-vram`` and
    ``--gpu-only`` act as for core models); they then compute on the load device whichever of
    their weights stayed on the offload device. Otherwise the load is a full one. ComfyUI's own
    models (``loads_itself``) are left to their calls, which load them with ComfyUI's estimates.
    """
    ours = [m for m in models if not m.loads_itself]
    castable = all(m.castable for m in ours)
    if ours:
        mm.load_models_gpu([m.patcher for m in ours], memory_required=memory_required, force_full_load=not castable)
    for m in ours if castable else []:
        place_castable(m.modules, m.patcher.load_device)
    return mm.get_torch_device()


def place_castable(modules: torch.nn.Module, device: torch.device) -> None:
    """After ComfyUI (partially) loaded ``modules`` built with ``model_ops``: what its ``comfy.ops``
    layers cannot cast (blend factors, PoseNet's gain) goes to ``device``, where the model computes
    whichever of their weights stayed offloaded."""
    casting = [layer for layer in modules.modules() if isinstance(layer, comfy.ops.CastWeightBiasOp)]
    place_other_tensors(modules, device, casting)
    set_placement(modules, device=device)


def unload(models: list[Managed]) -> None:
    """Offload ``models`` now (ComfyUI keeps a model loaded until another needs the memory), so the
    next phase does not hold this one's weights (clones of their patchers included: the same weights):
    ComfyUI's ``free_memory`` on their devices, keeping every other loaded model (the call and its
    ``keep_loaded`` argument exist in 0.3.64 and 0.33.0)."""
    patchers = [m.patcher for m in models]
    loaded = list(mm.current_loaded_models)
    ours = [lm for lm in loaded if any(lm.model is p or lm.model.is_clone(p) for p in patchers)]
    others = [lm for lm in loaded if all(lm is not o for o in ours)]
    for device in {lm.device for lm in ours}:
        mm.free_memory(1e30, device, keep_loaded=others)


def is_out_of_memory(exc: BaseException) -> bool:
    """ComfyUI's OOM exception type (torch's CUDA OOM; ``Exception`` where torch has none, so check torch's),
    or torch's CPU allocator failing (a RuntimeError ComfyUI does not treat as OOM)."""
    kind = mm.OOM_EXCEPTION if mm.OOM_EXCEPTION is not Exception else torch.cuda.OutOfMemoryError
    return isinstance(exc, kind) or limits.is_out_of_memory(exc)


def free_memory() -> None:
    """Release cached device memory (after a stage, and after an interruption)."""
    gc.collect()
    mm.soft_empty_cache()


# ------------------------------------------------------------------ ComfyUI's own VAE and CLIP vision
class CoreVAE(torch.nn.Module):
    """ComfyUI's VAE (e.g. from ImageOnlyCheckpointLoader) behind the calls the sampler's phases make
    on a diffusers temporal VAE. ComfyUI's ``encode``/``decode`` load it, split the batch by free
    memory and fall back to tiles on OOM; it decodes each batch as one video (the temporal mixing
    spans the chunk the sampler passes, as ours)."""

    def __init__(self, vae: Any, scaling_factor: float):
        super().__init__()
        self.core = vae
        self.config = SimpleNamespace(scaling_factor=scaling_factor)
        # inputs stay where the sampler has them: ComfyUI moves them to its device and dtype
        self.compute_device, self.compute_dtype = intermediate_device(), torch.float32

    def encode(self, image_pm1: torch.Tensor) -> SimpleNamespace:
        latents = self.core.encode(((image_pm1 + 1.0) / 2.0).movedim(1, -1))  # ComfyUI takes [0,1] (B,H,W,C)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: latents))

    def decode(self, latents: torch.Tensor, num_frames: int) -> SimpleNamespace:
        pixels = self.core.decode(latents)  # (B,H,W,C) in [0,1]; the batch is the video
        return SimpleNamespace(sample=pixels.movedim(-1, 1) * 2.0 - 1.0)


class CoreImageEncoder(torch.nn.Module):
    """ComfyUI's CLIP vision model (CLIP_VISION socket) called on pixels that are already preprocessed
    (the sampler's SVD resize and normalisation), instead of ``encode_image``'s own preprocessing."""

    def __init__(self, clip_vision: Any):
        super().__init__()
        self.core = clip_vision
        self.compute_device, self.compute_dtype = clip_vision.load_device, torch.float32  # as encode_image

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        mm.load_model_gpu(self.core.patcher)
        out = self.core.model(pixel_values=pixel_values.to(self.core.load_device).float(), intermediate_output=-2)
        return SimpleNamespace(image_embeds=out[2].to(intermediate_device()))


# ------------------------------------------------------------------ progress and interrupts
def should_stop() -> bool:
    """Interrupt point for the core's loops: raises ComfyUI's interrupt exception when a user
    pressed Cancel (or POST /interrupt); False otherwise."""
    mm.throw_exception_if_processing_interrupted()
    return False


def progress_bar(total: int = 1) -> Callable[..., None]:
    """A ``progress(done, total, preview=None)`` callback that drives ComfyUI's progress bar for this
    node (``preview``: a latent preview image, shown on the node)."""
    bar = comfy.utils.ProgressBar(total)
    return lambda done, total, preview=None: bar.update_absolute(done, total, preview)
