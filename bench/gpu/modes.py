"""The benchmark's modes, most valuable figure first, and how each one maps to node settings.

A mode that needs something the pack does not have yet names it in ``needs``; :func:`missing_feature`
reports it as skipped instead of failing, so such modes light up once the feature lands.
"""
from __future__ import annotations

from dataclasses import dataclass

STEPS, TILE, OVERLAP = 25, 16, 6  # the official inference settings (configs/test.yaml)
SMOKE_STEPS, SMOKE_TILE, SMOKE_OVERLAP = 2, 4, 1
SMOKE_RESOLUTION = {576: 64, 768: 128}  # tiny widths: DWPose Extract resolution 64 -> 64x64 frames
SMOKE_FRAMES = {16: 4, 72: 6}
SMOKE_DIFT_ENSEMBLE = 1  # the GPU run uses the official ensemble of 8 (the node's default)
# the rest of the official run's settings (configs/test.yaml, inference_ctrl.py), for ours and the official
SETTINGS = {"seed": 42, "guidance": 2.0, "noise_aug": 0.0, "fps": 7, "motion_bucket_id": 127, "decode_chunk": 8,
            "kernel_size": 199, "sigma": 20.0}
NATIVE_MODEL = "needs the native MODEL (issue 14)"


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
    needs: str | None = None  # a feature the pack must have, else skipped


MODES: tuple[Mode, ...] = (
    Mode("dispose-fp16", precision="fp16", official=True),  # ours vs official, the official dtype
    Mode("dispose-bf16"),
    Mode("mimicmotion-bf16", dispose=False),
    Mode("dispose-fp8", weight_dtype="fp8_e4m3fn"),
    Mode("dispose-bf16-72f", frames=72),
    Mode("dispose-bf16-768", resolution=768),
    Mode("dispose-bf16-lowvram-8g", usable_gib=8.0),
    Mode("dispose-bf16-compile", needs=NATIVE_MODEL),
    Mode("dispose-bf16-easycache", needs=NATIVE_MODEL),
    Mode("dispose-bf16-attention-backends", needs=NATIVE_MODEL),
)


def missing_feature(mode: Mode, node_outputs: dict[str, list[str]]) -> str | None:
    """Why ``mode`` cannot run with this pack (None if it can). ``node_outputs``: node id -> output types."""
    if mode.needs == NATIVE_MODEL and "MODEL" not in node_outputs.get("DisPoseMimicMotionLoader", []):
        return NATIVE_MODEL
    return None

