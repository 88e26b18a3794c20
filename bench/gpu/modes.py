"""The benchmark's modes, most valuable figure first, and how each one maps to node settings.

A mode that names a ComfyUI attention function this machine lacks (sage, flash: their packages)
is skipped with the reason instead of failing (``bench/gpu/attention.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

STEPS, TILE, OVERLAP = 25, 16, 6  # the official inference settings (configs/test.yaml)
SMOKE_STEPS, SMOKE_TILE, SMOKE_OVERLAP = 2, 4, 1
# EasyCache reuses no step before its third model call (it needs two outputs to predict the change)
SMOKE_EASYCACHE_STEPS = 8
SMOKE_RESOLUTION = {576: 64, 768: 128}  # tiny widths: DWPose Extract resolution 64 -> 64x64 frames
SMOKE_FRAMES = {16: 4, 72: 6}
SMOKE_DIFT_ENSEMBLE = 1  # the GPU run uses the official ensemble of 8 (the node's default)
# TorchCompileModel's backend; the smoke run traces with dynamo only (inductor's CPU code generation takes minutes)
COMPILE_BACKEND, SMOKE_COMPILE_BACKEND = "inductor", "eager"
# the rest of the official run's settings (configs/test.yaml, inference_ctrl.py), for ours and the official
SETTINGS = {"seed": 42, "guidance": 2.0, "noise_aug": 0.0, "fps": 7, "motion_bucket_id": 127, "decode_chunk": 8,
            "kernel_size": 199, "sigma": 20.0}
# ComfyUI's attention flags and the packages they need; they switch comfy.ldm's attention only
COMFY_ATTENTION = {"sageattention": "--use-sage-attention", "flash_attn": "--use-flash-attention"}


@dataclass(frozen=True)
class Mode:
    """One benchmark job: DWPose Extract resolution (576 -> 1024x576), driving frames, node settings."""

    name: str
    resolution: int = 576
    frames: int = 16
    precision: str = "bf16"
    weight_dtype: str = "default"
    dispose: bool = True  # False: plain MimicMotion (no CMP, DIFT, ControlNet)
    usable_gib: float | None = None  # low-VRAM: ComfyUI reserves all but this much (--reserve-vram)
    official: bool = False  # also run the official pipeline at these settings
    core_sampler: bool = False  # the loader's MODEL through core SamplerCustomAdvanced, not the one-node sampler
    model_patch: str | None = None  # a core node applied to that MODEL: TorchCompileModel or EasyCache
    # ComfyUI attention function (registered name) the models are built with; None: ComfyUI's choice
    attention: str | None = None


MODES: tuple[Mode, ...] = (
    Mode("dispose-fp16", precision="fp16", official=True),  # ours vs official, the official dtype
    Mode("dispose-bf16"),
    Mode("mimicmotion-bf16", dispose=False),
    Mode("dispose-fp8", weight_dtype="fp8_e4m3fn"),
    Mode("dispose-bf16-72f", frames=72),
    Mode("dispose-bf16-768", resolution=768),
    Mode("dispose-bf16-lowvram-4g", usable_gib=4.0),  # the sample phase's 6.3 GiB estimate must load partially
    Mode("dispose-bf16-core-sampler", core_sampler=True),  # the baseline of the next two
    Mode("dispose-bf16-compile", core_sampler=True, model_patch="TorchCompileModel"),
    Mode("dispose-bf16-easycache", core_sampler=True, model_patch="EasyCache"),
    # vs ComfyUI's default ("pytorch" on NVIDIA GPUs, "sub_quad" on the CPU): memory-saving, unfused
    Mode("dispose-bf16-split-attention", attention="split"),
    Mode("dispose-bf16-sage-attention", attention="sage"),
    Mode("dispose-bf16-flash-attention", attention="flash"),
)

