"""The data that flows between stages (and between ComfyUI nodes).

Frame 0 is always the reference image; frames 1..F-1 are the driving frames. Keypoints are
normalised to the generation canvas (x / width, y / height), as the official code keeps them.
Flows are in pixels of the generation canvas, channel 0 = dx, channel 1 = dy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import InputError


@dataclass
class PoseSequence:
    """One person's whole-body keypoints for the reference (frame 0) and every driving frame.

    ComfyUI type ``DISPOSE_POSES``. Arrays use the official DWPose/OpenPose-18 conventions:
    ``body_subset[f, j]`` is ``j`` when body point ``j`` is visible, else ``-1``; hands are
    ``[left, right]``.
    """

    body: np.ndarray  # (F, 18, 2) float32, normalised
    body_score: np.ndarray  # (F, 18)
    body_subset: np.ndarray  # (F, 18) float32, j or -1
    hands: np.ndarray  # (F, 2, 21, 2)
    hands_score: np.ndarray  # (F, 2, 21)
    faces: np.ndarray  # (F, 68, 2)
    faces_score: np.ndarray  # (F, 68)
    height: int  # generation canvas
    width: int
    # sequence indices (driving frame k = index k+1) of frames with no person, filled by the
    # empty-frame policy (pose/extract.py)
    filled_frames: tuple[int, ...] = field(default=())
    # every person of each frame as the skeleton images show them (pose.frame.PoseFrame, aligned
    # like the chosen person); None: only the chosen person is drawn
    scene: tuple[Any, ...] | None = None
    # which person was taken when the reference shows several (for the node's log and preview)
    note: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.body.shape[0])


@dataclass
class FlowField:
    """Per-frame 2-D flow in canvas pixels: ``flow[k]`` belongs to frame k+1 (frame 0 has none)."""

    flow: torch.Tensor  # (F-1, 2, H, W) float32, pixels

    @property
    def num_frames(self) -> int:
        return int(self.flow.shape[0]) + 1

    def to_image(self, max_magnitude: float | None = None) -> torch.Tensor:
        """Colour-wheel preview (F-1, H, W, 3) in [0, 1], normalised over the whole field."""
        from .motion.flow_viz import flow_to_color

        return flow_to_color(self.flow, max_magnitude)


@dataclass
class MotionField(FlowField):
    """Sparse motion field: Gaussian-smoothed frame-to-frame keypoint displacements.

    ComfyUI type ``DISPOSE_MOTION``. ``flow[k]`` is the step from frame k to frame k+1.
    """


@dataclass
class DenseFlow(FlowField):
    """Dense motion field from CMP: reference -> frame k+1 flow over the reference image.

    ComfyUI type ``DISPOSE_FLOW``.
    """


@dataclass
class PointEmbeddings:
    """Keypoint correspondence: one DIFT embedding per reference body keypoint plus the tracks.

    ComfyUI type ``DISPOSE_POINTS``.
    """

    ref_point_emb: torch.Tensor  # (18, C) float32; zero rows for keypoints not seen in the reference
    keypoints: np.ndarray  # (F, 18, 2) normalised, frame 0 = reference
    subset: np.ndarray  # (F, 18) j or -1

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])


def check_frame_counts(**named_counts: int) -> int:
    """Raise InputError unless all the given frame counts agree; return the common count.

    Frame counts include the reference frame. Call with the producing node's name as keyword,
    e.g. ``check_frame_counts(poses=..., motion_field=..., dense_flow=...)``.
    """
    counts = {k: v for k, v in named_counts.items() if v is not None}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise InputError(
            f"Frame counts do not match ({listing}; each includes the reference frame). "
            "Feed every node from the same DWPose Extract output."
        )
    return next(iter(counts.values()))
