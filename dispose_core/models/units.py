"""The model units the sampler's phases take, one per phase, so a host can hold each one separately.

The official pipeline keeps CLIP, VAE, UNet and PoseNet on the GPU for the whole run although
CLIP is needed only before the first step and the VAE only after the last. Here each phase gets
its own object (encode: ``ImageEncoder`` + the VAE; sample: ``Denoiser`` + the ControlNet; decode:
the VAE), and a host such as ComfyUI can give each its own memory management.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class ImageEncoder:
    """The CLIP image encoder plus the preprocessing constants its training used."""

    model: nn.Module  # transformers CLIPVisionModelWithProjection
    size: tuple[int, int]  # (height, width) of the CLIP input
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Denoiser:
    """MimicMotion's UNet and PoseNet (always used together) and the SVD noise schedule config."""

    unet: nn.Module  # MimicMotionUNet
    pose_net: nn.Module  # PoseNet
    scheduler_config: dict
