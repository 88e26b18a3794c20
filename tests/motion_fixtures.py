"""Builders shared by the motion tests: PoseSequence from golden tensors, COO densification."""
from __future__ import annotations

import numpy as np
import torch

from dispose_core.types import PoseSequence


def make_poses(body, subset, height: int, width: int, score=None) -> PoseSequence:
    """A PoseSequence with the given body points (hands/face empty, as the motion side ignores them)."""
    body = np.asarray(body, dtype=np.float32)
    f = body.shape[0]
    subset = np.asarray(subset, dtype=np.float32)
    score = np.ones((f, 18), np.float32) if score is None else np.asarray(score, np.float32)
    return PoseSequence(
        body=body,
        body_score=score,
        body_subset=subset,
        hands=np.zeros((f, 2, 21, 2), np.float32),
        hands_score=np.zeros((f, 2, 21), np.float32),
        faces=np.zeros((f, 68, 2), np.float32),
        faces_score=np.zeros((f, 68), np.float32),
        height=int(height),
        width=int(width),
    )


def random_poses(frames: int, height: int, width: int, seed: int = 0, invisible: float = 0.1) -> PoseSequence:
    """Random walk keypoints with some invisible points, for property tests."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.05, 0.95, size=(1, 18, 2))
    steps = rng.normal(0, 0.02, size=(frames, 18, 2))
    steps[0] = 0
    body = start + np.cumsum(steps, axis=0)
    subset = np.where(rng.uniform(size=(frames, 18)) < invisible, -1, np.arange(18)[None, :])
    return make_poses(body, subset, height, width)


def densify_coo(coo: torch.Tensor, steps: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Golden COO rows [t, y, x, dx, dy, ambiguous] -> dense (steps, 2, H, W) flow and mask."""
    flow = torch.zeros(steps, 2, height, width)
    mask = torch.zeros(steps, 2, height, width, dtype=torch.uint8)
    t, y, x = (coo[:, i].long() for i in range(3))
    flow[t, 0, y, x] = coo[:, 3]
    flow[t, 1, y, x] = coo[:, 4]
    mask[t, :, y, x] = 1
    return flow, mask
