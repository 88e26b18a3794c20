"""Keypoint tracks in canvas pixels (the official ``pose2track``), the input of both flow builders.

A body point is on the track in frame f when ``body_subset[f, j] != -1``; its pixel position is
``x * W`` / ``y * H`` clipped to ``[0, W-1]`` / ``[0, H-1]`` (so points outside the frame sit on the
border). Points off the track keep position (0, 0), which the official flow code then reads as a
real position (the quirks the flow builders reproduce).

One deviation: a point marked visible but with a NaN/inf coordinate is treated as not visible
(the official code would crash on ``int(nan)``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..types import PoseSequence


def track_positions(poses: PoseSequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel positions ``(F, 18, 2)`` float64 (x, y) and visibility ``(F, 18)`` bool, on the CPU."""
    body = np.asarray(poses.body)
    subset = np.asarray(poses.body_subset)
    if body.ndim != 3 or body.shape[1:] != (18, 2) or subset.shape != body.shape[:2]:
        raise InputError(
            f"Pose arrays have shapes body {body.shape} / body_subset {subset.shape}; expected "
            "(F, 18, 2) and (F, 18). Feed the poses from DWPose Extract (DisPose)."
        )
    if poses.height < 1 or poses.width < 1:
        raise InputError(f"Pose canvas size {poses.width}x{poses.height} is empty; set the generation size.")
    xy = torch.from_numpy(body.astype(np.float64))
    visible = torch.from_numpy(subset != -1) & torch.isfinite(xy).all(dim=-1)
    scale = torch.tensor([poses.width, poses.height], dtype=torch.float64)
    upper = scale - 1
    pixels = torch.minimum(xy * scale, upper).clamp_min(0.0)
    pixels = torch.where(visible[..., None], pixels, torch.zeros((), dtype=torch.float64))
    return pixels, visible
