"""Progressive latent fusion over long videos: overlapping frame tiles that all contain frame 0.

MimicMotion denoises a long video in tiles of ``tile_size`` frames. Every tile starts with the
reference frame 0 (the model was trained with the reference as first frame), followed by a run of
consecutive frames; runs overlap by ``overlap`` frames. Each tile's prediction is blended into its
frames with triangular weights (small at the tile edges) and normalised by the summed weights.
"""
from __future__ import annotations

import torch


def tile_indices(num_frames: int, tile_size: int, overlap: int) -> torch.Tensor:
    """(num_tiles, tile_size) int64 frame indices; row = [0, i+1, ..., i+tile_size-1].

    Starts i step by ``tile_size - overlap``; if the last run ends before the last frame, a final
    tile [0, N-T+1, ..., N-1] is appended (as the official pipeline does).
    """
    starts = list(range(0, num_frames - tile_size + 1, tile_size - overlap))
    if starts[-1] + tile_size - 1 < num_frames - 1:
        starts.append(num_frames - tile_size)
    run = torch.arange(1, tile_size)
    rows = [torch.cat([torch.zeros(1, dtype=torch.long), start + run]) for start in starts]
    return torch.stack(rows)


def tile_weights(tile_size: int) -> torch.Tensor:
    """Triangular blend weight per tile position k: min((k+0.5)*2/T, 2-(k+0.5)*2/T)."""
    ramp = (torch.arange(tile_size, dtype=torch.float32) + 0.5) * 2.0 / tile_size
    return torch.minimum(ramp, 2 - ramp)
