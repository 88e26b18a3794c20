"""PoseNet: rendered pose images -> latent-resolution features added after the UNet's conv_in.

Same parameter names as MimicMotion's ``pose_net.*`` (``conv_layers.{0,2,...,14}``, ``final_proj``,
``scale``), so ``MimicMotion_1-1.pth`` loads strictly. The layer plan is a table rather than a
hand-written list so the three resolution halvings (pixel -> latent /8) are easy to see.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .layer_ops import PLAIN_OPS, ModelOps

# (in, out, kernel, stride): a 3x3 conv keeps the size, a 4x4 stride-2 conv halves it.
_CONV_PLAN: tuple[tuple[int, int, int, int], ...] = (
    (3, 3, 3, 1), (3, 16, 4, 2),
    (16, 16, 3, 1), (16, 32, 4, 2),
    (32, 32, 3, 1), (32, 64, 4, 2),
    (64, 64, 3, 1), (64, 128, 3, 1),
)


class PoseNet(nn.Module):
    """Eight conv+SiLU layers (/8 resolution), a 1x1 projection to the UNet width, a learned gain."""

    def __init__(self, noise_latent_channels: int = 320, ops: ModelOps = PLAIN_OPS) -> None:
        super().__init__()
        conv = ops.operations.Conv2d
        layers: list[nn.Module] = []
        for c_in, c_out, k, s in _CONV_PLAN:
            layers += [conv(c_in, c_out, kernel_size=k, stride=s, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = conv(_CONV_PLAN[-1][1], noise_latent_channels, kernel_size=1)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, pose_images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) or (B,F,3,H,W) pose renderings in [-1,1] -> (N or B*F, C, H/8, W/8)."""
        if pose_images.ndim == 5:
            pose_images = pose_images.flatten(0, 1)
        if pose_images.ndim != 4 or pose_images.shape[1] != 3:
            raise InputError(
                f"PoseNet expects pose images shaped (N,3,H,W) or (B,F,3,H,W), got {tuple(pose_images.shape)}; "
                "pass RGB pose renderings scaled to [-1,1]."
            )
        h, w = pose_images.shape[-2:]
        if h % 8 or w % 8:
            raise InputError(f"PoseNet needs H and W divisible by 8, got {h}x{w}; resize the pose frames.")
        x = pose_images.to(self.scale.dtype)
        return self.final_proj(self.conv_layers(x)) * self.scale
