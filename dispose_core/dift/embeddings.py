"""Reference keypoint embeddings: the DIFT feature vector at each reference body keypoint.

The official pipeline upsamples the whole (1, 1280, H/16, W/16) DIFT map bilinearly
(align_corners=False) to image size and reads 18 pixels of it. Here only those 18 bilinear samples
are computed, with the same taps and weights, so no full-size map (755 M values at 1024x576) is
ever built.

Official quirk (README quirk 5): the pipeline unpacks the image size (1, 3, H, W) as (b, c, w, h),
so the map is upsampled to W rows x H columns and keypoint (x, y) is read at
row clip(int(y*W)), column clip(int(x*H)). Same normalised location, a transposed resampling
grid; identical to the natural H x W lookup only for square images. The trained DisPose weights
saw the quirky embeddings, so it is the default; ``natural_orientation=True`` gives the H x W one.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..types import PointEmbeddings, PoseSequence


def _taps(pixel: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input indices (i0, i1) and weight of i1 that bilinear resizing in_size -> out_size uses at ``pixel``.

    Same float32 arithmetic as torch's upsample_bilinear2d (align_corners=False, size given).
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = ((pixel.float() + 0.5) * scale - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(in_size - 1)
    i1 = (i0 + 1).clamp_max(in_size - 1)
    return i0, i1, (src - i0).clamp(0, 1)


def reference_point_embeddings(
    feature: torch.Tensor, poses: PoseSequence, *, natural_orientation: bool = False
) -> torch.Tensor:
    """(18, C) float32: the DIFT vector at each reference body keypoint; zero rows where undetected.

    ``feature`` is the (1, C, h, w) DIFT map of the reference (frame 0 of ``poses``).
    """
    if feature.ndim != 4 or feature.shape[0] != 1:
        raise InputError(f"DIFT feature must be one map (1, C, h, w), got {tuple(feature.shape)}.")
    points = np.asarray(poses.body[0], dtype=np.float64)
    visible = np.asarray(poses.body_subset[0]) != -1
    points = np.where(visible[:, None], np.nan_to_num(points), 0.0)  # invisible points are never read
    height, width = int(poses.height), int(poses.width)
    rows, cols = (height, width) if natural_orientation else (width, height)
    row = torch.from_numpy(np.clip(np.trunc(points[:, 1] * rows), 0, rows - 1).astype(np.int64))
    col = torch.from_numpy(np.clip(np.trunc(points[:, 0] * cols), 0, cols - 1).astype(np.int64))

    fmap = feature[0].float()
    r0, r1, wr = _taps(row, fmap.shape[1], rows)
    c0, c1, wc = _taps(col, fmap.shape[2], cols)
    r0, r1, c0, c1 = (i.to(fmap.device) for i in (r0, r1, c0, c1))
    wr, wc = wr.to(fmap.device), wc.to(fmap.device)
    top = (1 - wc) * fmap[:, r0, c0] + wc * fmap[:, r0, c1]
    bottom = (1 - wc) * fmap[:, r1, c0] + wc * fmap[:, r1, c1]
    emb = ((1 - wr) * top + wr * bottom).T  # (18, C)
    return torch.where(torch.from_numpy(visible).to(emb.device)[:, None], emb, 0.0)


def build_point_embeddings(
    feature: torch.Tensor, poses: PoseSequence, *, natural_orientation: bool = False
) -> PointEmbeddings:
    """The ``DISPOSE_POINTS`` value: reference embeddings plus every frame's body keypoints."""
    return PointEmbeddings(
        ref_point_emb=reference_point_embeddings(feature, poses, natural_orientation=natural_orientation),
        keypoints=np.asarray(poses.body, dtype=np.float32),
        subset=np.asarray(poses.body_subset, dtype=np.float32),
    )
