"""DisPose control for the sampler: its inputs, and their features for one tile.

As in the official pipeline, the motion encoder and the point adapter run for every tile call:
the tile's flows are expanded from the compact guidance (keypoint impulses, CMP's 384x384 flow)
to the canvas, encoded, and dropped, so nothing per frame of the video is held while sampling.
Unlike the official call they run once per tile call for both CFG halves (the features do not
depend on the half). Frame 0 of a tile [0, i+1, ...] gets the zero flow, frame f >= 1 flow f-1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.cast_layers import compute_placement
from ..types import DenseFlow, FlowField, MotionField, PointEmbeddings


@dataclass
class ControlInputs:
    """The Hybrid ControlNet and its conditioning (what ``DISPOSE_CONTROL`` carries).

    ``strength`` scales every residual (official ``controlnet_cond_scale``); ``motion_strength``
    and ``point_strength`` scale the motion-field and keypoint features; the ControlNet runs only
    for steps whose fraction ``step / steps`` lies in [start_percent, end_percent) (end 1.0
    includes the last step); other steps are plain MimicMotion.
    """

    controlnet: Any
    motion_field: MotionField
    dense_flow: DenseFlow
    points: PointEmbeddings | None = None
    strength: float = 1.0
    motion_strength: float = 1.0
    point_strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0

    def active_steps(self, steps: int) -> list[bool]:
        """Per denoising step: whether the ControlNet runs."""
        fractions = [i / steps for i in range(steps)]
        return [self.start_percent <= f and (f < self.end_percent or self.end_percent >= 1.0) for f in fractions]


@dataclass
class ControlFeatures:
    """One tile's ControlNet features, its frame 0 the reference, in the ControlNet's dtype and device."""

    motion: torch.Tensor  # (T, C0, h, w)
    points: list[torch.Tensor] | None  # per encoder level (T, C_i, h_i, w_i)


def _steps(field: FlowField, steps: torch.Tensor) -> torch.Tensor:
    """The flows of the given steps (frame k+1 is step k) on the canvas; a run of consecutive steps
    (every tile but the reference) is expanded in one go."""
    first, last = int(steps[0]), int(steps[-1])
    if torch.equal(steps, torch.arange(first, last + 1)):
        return field.fields(first, last + 1)
    return torch.cat([field.fields(int(k), int(k) + 1) for k in steps])


@torch.no_grad()
def tile_control_features(control: ControlInputs, frames: torch.Tensor, height: int, width: int) -> ControlFeatures:
    """The motion encoder and the point adapter over one tile's ``frames`` [0, f1, ...] (frame 0 the
    reference, which gets the zero flow): the compact guidance is expanded to the canvas for these
    frames only, so memory follows the tile, not the video."""
    if int(frames[0]) != 0 or len(frames) < 2:
        raise ValueError(f"a tile starts with the reference frame 0 and holds a driving frame, got {frames.tolist()}")
    net = control.controlnet
    device, dtype = compute_placement(net)
    steps = frames[1:].cpu() - 1
    dense = _steps(control.dense_flow, steps).to(device=device, dtype=dtype)[None]
    traj = _steps(control.motion_field, steps).to(device=device, dtype=dtype)[None]
    motion = net.encode_motion(dense, traj, frames_per_chunk=len(frames))  # (T, C, h, w)

    points = None
    if control.points is not None:
        p, rows = control.points, frames.cpu().numpy()
        emb = p.ref_point_emb.to(device=device, dtype=dtype)
        keypoints = torch.as_tensor(np.asarray(p.keypoints)[rows])  # any float dtype: the adapter works in float64
        subset = torch.as_tensor(np.asarray(p.subset)[rows])
        points = [m.to(dtype) for m in net.encode_points(emb, keypoints, subset, height, width)]
    return ControlFeatures(motion, points)
