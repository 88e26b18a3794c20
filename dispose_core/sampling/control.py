"""DisPose control for the sampler: inputs, and their step-invariant features computed once.

The official pipeline re-runs the motion encoder and the point adapter for every tile at every
step (and twice for the CFG halves) although neither depends on the noise level. Both work frame
by frame, so we run them once per video over all frames and slice each tile's frames out:
frame 0 gets the zero-flow feature, frame f >= 1 the feature of flow f-1 -- exactly what the
official per-tile call computes for a tile [0, i+1, ...] from flows idx[1:] - 1 with a zero
flow prepended.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.cast_layers import compute_placement
from ..types import DenseFlow, MotionField, PointEmbeddings


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
    """Per-frame ControlNet features, frame 0 = reference, in the ControlNet's dtype and device."""

    motion: torch.Tensor  # (F, C0, h, w)
    points: list[torch.Tensor] | None  # per encoder level (F, C_i, h_i, w_i)


def _frame_chunks(count: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk, count)) for s in range(0, count, chunk)]


@torch.no_grad()
def control_features(control: ControlInputs, height: int, width: int, chunk: int) -> ControlFeatures:
    """Run the motion encoder and the point adapter once over the video, ``chunk`` frames at a time.

    Chunking bounds the full-resolution activations of the motion encoder (it works at pixel
    resolution) and the expanded flows by the chunk, not the video length; the per-frame outputs
    are latent-sized.
    """
    net = control.controlnet
    device, dtype = compute_placement(net)
    parts = []
    for start, stop in _frame_chunks(control.dense_flow.num_frames - 1, chunk):
        # the compact guidance is expanded to the canvas one chunk at a time
        d = control.dense_flow.fields(start, stop).to(device=device, dtype=dtype)[None]
        t = control.motion_field.fields(start, stop).to(device=device, dtype=dtype)[None]
        # one encoder pass per chunk (n flows + the zero-flow frame), so ``chunk`` bounds memory
        out = net.encode_motion(d, t, frames_per_chunk=stop - start + 1)  # (n+1, C, h, w)
        parts.append(out if start == 0 else out[1:])
    motion = torch.cat(parts)

    points = None
    if control.points is not None:
        p = control.points
        emb = p.ref_point_emb.to(device=device, dtype=dtype)
        keypoints = torch.as_tensor(np.asarray(p.keypoints))  # any float dtype: the adapter works in float64
        subset = torch.as_tensor(np.asarray(p.subset))
        levels: list[list[torch.Tensor]] = []
        for start, stop in _frame_chunks(keypoints.shape[0], chunk):
            maps = net.encode_points(emb, keypoints[start:stop], subset[start:stop], height, width)
            levels.append([m.to(dtype) for m in maps])
        points = [torch.cat(level) for level in zip(*levels)]
    return ControlFeatures(motion, points)
