"""Motion encoder (``controlnet_cond_embedding``): dense CMP flow + sparse trajectory flow -> latent feature.

Two conv branches of the same shape (one per flow), each from 2 flow channels at pixel resolution
down to the ControlNet width at latent resolution (/8); their sum goes through ``conv_final``. The
result is added to the ControlNet's ``conv_in`` output. The sampler runs it per tile call on that
tile's flows (``HybridControlNet.encode_motion``), as the official code does, but once for both
CFG halves: keeping it for the whole video would cost memory per frame.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FLOW_CHANNELS = 2


def _branch(channels: tuple[int, ...]) -> tuple[nn.Conv2d, nn.ModuleList]:
    """conv_in (2 -> c0) and, per stage, a 3x3 conv and a 3x3 stride-2 conv (c -> c')."""
    blocks = nn.ModuleList()
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
        blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
    return nn.Conv2d(FLOW_CHANNELS, channels[0], kernel_size=3, padding=1), blocks


class MotionEncoder(nn.Module):
    """Official parameter names: ``conv_in_flow``, ``blocks_flow``, ``conv_out_flow`` (and ``*_traj``), ``conv_final``."""

    def __init__(self, out_channels: int, channels: tuple[int, ...] = (16, 32, 96, 256)) -> None:
        super().__init__()
        self.conv_in_flow, self.blocks_flow = _branch(tuple(channels))
        self.conv_out_flow = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)
        self.conv_in_traj, self.blocks_traj = _branch(tuple(channels))
        self.conv_out_traj = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)
        self.conv_final = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)

    @staticmethod
    def _run(conv_in: nn.Module, blocks: nn.ModuleList, conv_out: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(conv_in(x))
        for conv in blocks:
            x = F.silu(conv(x))
        return conv_out(x)

    def forward(self, dense_flow: torch.Tensor, traj_flow: torch.Tensor) -> torch.Tensor:
        """(N,2,H,W) flows (one per frame, frame 0 included) -> (N,C,H/8,W/8)."""
        flow = self._run(self.conv_in_flow, self.blocks_flow, self.conv_out_flow, dense_flow)
        traj = self._run(self.conv_in_traj, self.blocks_traj, self.conv_out_traj, traj_flow)
        return self.conv_final(flow + traj)
