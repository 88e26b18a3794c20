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


class FlowField:
    """Per-frame 2-D flows in canvas pixels: step k belongs to frame k+1 (frame 0 has none).

    Stored compactly (a long video's full-canvas float32 fields would dominate the memory of the
    whole graph) and expanded on request, a frame range at a time, by ``fields``.
    """

    height: int  # generation canvas
    width: int

    @property
    def num_frames(self) -> int:
        """Frames including the reference (one more than the stored steps)."""
        raise NotImplementedError

    def fields(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """``(n, 2, H, W)`` float32 flows of steps ``start:stop`` (frames start+1 .. stop) on the canvas."""
        raise NotImplementedError

    def to_image(self, max_magnitude: float | None = None, *, long_side: int | None = None,
                 chunk: int | None = None) -> torch.Tensor:
        """Colour-wheel preview ``(F-1, h, w, 3)`` in [0, 1], normalised over the whole field.

        Built ``chunk`` frames at a time (default ``flow_viz.PREVIEW_CHUNK``); ``long_side`` caps
        the preview's longer side (area downscaling of the colours; None = canvas size).
        """
        from .motion.flow_viz import field_preview

        return field_preview(self, max_magnitude, long_side=long_side, chunk=chunk)


@dataclass
class MotionField(FlowField):
    """Sparse motion field: Gaussian-smoothed frame-to-frame keypoint displacements.

    ComfyUI type ``DISPOSE_MOTION``. Step k is the step from frame k to frame k+1. Held as the
    keypoint impulses it is made of (``motion.sparse_field.StepImpulses``, a few numbers per
    frame) and blurred again for the frames asked for; or, for a field that comes from elsewhere
    (recorded inputs), as that ``(F-1, 2, H, W)`` float32 tensor.
    """

    flow: torch.Tensor | None = None  # a whole field given as it is; None: computed from ``impulses``
    impulses: Any = None  # motion.sparse_field.StepImpulses
    height: int = 0  # generation canvas (taken from ``flow`` when it is given)
    width: int = 0
    kernel_size: int = 199
    sigma: float = 20.0

    def __post_init__(self) -> None:
        if (self.flow is None) == (self.impulses is None):
            raise InputError("A MotionField holds either a whole flow tensor or the impulses it is computed "
                             "from; give exactly one. Use Sparse Motion Field (DisPose) to make one.")
        if self.flow is not None:
            self.height, self.width = int(self.flow.shape[-2]), int(self.flow.shape[-1])

    @property
    def num_frames(self) -> int:
        steps = self.flow.shape[0] if self.flow is not None else self.impulses.rows.shape[0]
        return int(steps) + 1

    def fields(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        if self.flow is not None:
            return self.flow[start:stop].float()
        from .motion.sparse_field import blur_impulses

        return blur_impulses(self.impulses.steps(start, stop), self.height, self.width,
                             kernel_size=self.kernel_size, sigma=self.sigma)


@dataclass
class DenseFlow(FlowField):
    """Dense motion field from CMP: reference -> frame k+1 flow over the reference image.

    ComfyUI type ``DISPOSE_FLOW``. Held at CMP's working size (384x384, in pixels of that size,
    float16: see ``motion.dense_flow.STORED_DTYPE``) and brought to the canvas per request the way
    the official run does it (``resize_flow``: nearest neighbour, values scaled per axis); a flow
    given at the canvas size is used as it is.
    """

    flow: torch.Tensor  # (F-1, 2, h, w) float16 from CMP (any float dtype), pixels of its own size
    height: int = 0  # generation canvas; 0: the flow's own size
    width: int = 0

    def __post_init__(self) -> None:
        if not (self.height and self.width):
            self.height, self.width = int(self.flow.shape[-2]), int(self.flow.shape[-1])

    @property
    def num_frames(self) -> int:
        return int(self.flow.shape[0]) + 1

    def fields(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        from .motion.dense_flow import resize_flow

        return resize_flow(self.flow[start:stop].float(), self.height, self.width)


@dataclass(frozen=True)
class CorrespondencePicture:
    """What the DIFT preview is drawn on (``dift.preview``): one small image pair for the whole
    video, at most ``pipeline.PREVIEW_LONG_SIDE`` long, so its memory does not grow with the clip."""

    pca_map: np.ndarray  # (h, w, 3) uint8: the reference's DIFT map in PCA colours over the reference
    reference: np.ndarray  # (h, w, 3) uint8: the reference on the canvas, at the same size
    colours: np.ndarray  # (18, 3) uint8: colour of each reference keypoint's embedding


@dataclass
class PointEmbeddings:
    """Keypoint correspondence: one DIFT embedding per reference body keypoint plus the tracks.

    ComfyUI type ``DISPOSE_POINTS``.
    """

    ref_point_emb: torch.Tensor  # (18, C) float32; zero rows for keypoints not seen in the reference
    keypoints: np.ndarray  # (F, 18, 2) normalised, frame 0 = reference
    subset: np.ndarray  # (F, 18) j or -1
    picture: CorrespondencePicture | None = None  # for the preview; None where none was made (recorded inputs)

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
