"""Point adapter: reference keypoint embeddings placed at each frame's keypoints -> per-level features.

Official semantics (DisPose ``point_adapter.py``, golden M2c), vectorised:

1. grid g0 = (H // r0, W // r0) pixels / rate of level 0 (16 for the real model);
2. each keypoint k of frame f that is detected (subset != -1) and has x, y >= 0 adds embedding k into
   cell (clamp(int(y * gh)), clamp(int(x * gw))) -- nearest cell by truncation; a cell hit n times
   holds the mean; hit cells form a mask. Keypoints undetected in the reference have zero embeddings
   but still count (they dilute the mean and set the mask);
3. per level i: MLP_i (Linear -> SiLU -> Linear) on the cells, zero on unhit cells, bilinear resize
   (align_corners=False) to (H // r_i, W // r_i), times the nearest-resized mask.

The official code runs the MLPs densely on every cell and multiplies by the mask; here they run only
on hit cells (at most frames x keypoints rows instead of frames x g0 cells) -- equal, since unhit cells
are zeroed anyway. Nothing depends on the denoising step or the CFG half: the sampler runs this once
per tile call for both halves.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .cast_layers import compute_placement


class _MLP(nn.Module):
    """Named ``mlp.0`` / ``mlp.2`` like the official module so checkpoints load unchanged."""

    def __init__(self, in_dim: int, out_dim: int, mid_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, mid_dim), nn.SiLU(), nn.Linear(mid_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class PointAdapter(nn.Module):
    """Official defaults: 1280-d embeddings, levels 320/640/1280/1280 at rates 16/32/64/64, hidden 128."""

    def __init__(
        self,
        embedding_channels: int = 1280,
        channels: tuple[int, ...] = (320, 640, 1280, 1280),
        downsample_rates: tuple[int, ...] = (16, 32, 64, 64),
        mid_dim: int = 128,
    ) -> None:
        super().__init__()
        if len(channels) != len(downsample_rates):
            raise ValueError("PointAdapter: one downsample rate per level is needed")
        self.embedding_channels = embedding_channels
        self.downsample_rates = tuple(downsample_rates)
        self.model_list = nn.ModuleList(_MLP(embedding_channels, c, mid_dim) for c in channels)

    def forward(
        self,
        embeddings: torch.Tensor,
        keypoints: torch.Tensor,
        subset: torch.Tensor,
        height: int,
        width: int,
    ) -> list[torch.Tensor]:
        """(K,C) embeddings, (F,K,2) normalised (x, y), (F,K) subset (-1 = undetected), pixel size
        -> one (F, C_i, H // r_i, W // r_i) map per level."""
        self._check(embeddings, keypoints, subset, height, width)
        frames, n_points = keypoints.shape[:2]
        gh, gw = height // self.downsample_rates[0], width // self.downsample_rates[0]
        device, dtype = compute_placement(self)
        keypoints = keypoints.to(device=device, dtype=torch.float64)  # the official code works in float64
        used = (subset.to(device) != -1) & (keypoints.amin(dim=-1) >= 0)
        col = (keypoints[..., 0] * gw).floor().clamp(0, gw - 1).long()  # floor == int() for x >= 0
        row = (keypoints[..., 1] * gh).floor().clamp(0, gh - 1).long()
        frame = torch.arange(frames, device=device)[:, None].expand(frames, n_points)
        cell = (frame * gh + row) * gw + col

        hit_cells, slot = torch.unique(cell[used], return_inverse=True)
        point = torch.arange(n_points, device=device).expand(frames, n_points)[used]
        emb = embeddings.to(device=device, dtype=dtype)
        sums = emb.new_zeros(len(hit_cells), emb.shape[1]).index_add_(0, slot, emb[point])
        counts = torch.bincount(slot, minlength=len(hit_cells)).to(dtype)
        means = sums / counts[:, None]

        mask = emb.new_zeros(frames * gh * gw)
        mask[hit_cells] = 1
        mask = mask.view(frames, 1, gh, gw)
        levels = []
        for mlp, rate in zip(self.model_list, self.downsample_rates):
            feat = mlp(means)
            grid = feat.new_zeros(frames * gh * gw, feat.shape[1]).index_copy_(0, hit_cells, feat)
            grid = grid.view(frames, gh, gw, -1).permute(0, 3, 1, 2)
            size = (height // rate, width // rate)
            grid = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
            levels.append(grid * F.interpolate(mask, size=size, mode="nearest"))
        return levels

    def _check(self, embeddings, keypoints, subset, height, width) -> None:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_channels:
            raise InputError(
                f"Point adapter: reference embeddings must be (keypoints, {self.embedding_channels}), got "
                f"{tuple(embeddings.shape)}; the DIFT features do not match this DisPose ControlNet."
            )
        if keypoints.ndim != 3 or keypoints.shape[1:] != (embeddings.shape[0], 2):
            raise InputError(
                f"Point adapter: keypoints must be (frames, {embeddings.shape[0]}, 2) normalised (x, y), "
                f"got {tuple(keypoints.shape)}."
            )
        if tuple(subset.shape) != tuple(keypoints.shape[:2]):
            raise InputError(
                f"Point adapter: subset must be (frames, keypoints) = {tuple(keypoints.shape[:2])}, got "
                f"{tuple(subset.shape)}."
            )
        step = max(self.downsample_rates)
        if height % step or width % step or height <= 0 or width <= 0:
            raise InputError(f"Point adapter: pixel size {height}x{width} must be a multiple of {step}.")
