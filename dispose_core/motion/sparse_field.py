"""Sparse motion field (DisPose motion field guidance, sparse part; golden G1).

Official recipe: for each step k -> k+1 of [reference, driving 1, driving 2, ...], every body point
visible in frame k writes its displacement (pixels) into a zero (H, W, 2) map at the truncated
pixel of its frame-k position; each map is then blurred with the normalised 199x199 Gaussian
(sigma 20, reflect-101 border). Each map holds at most 18 impulses, so the blurred field is a sum
of at most 18 separable Gaussians: ``B_h[:, rows] diag(values) B_w[:, cols].T``, one batched
matrix product for all steps instead of a 199x199 filter per frame.

Official quirks kept by default: only the start frame's visibility is checked (a point that
vanishes in frame k+1 writes a jump towards pixel (0, 0)); positions are truncated; when points
share a pixel the later index overwrites.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..types import MotionField, PoseSequence
from .gaussian import blur_columns, check_kernel
from .splat import last_writer
from .tracks import track_positions


@dataclass
class StepImpulses:
    """The pre-blur maps in point form: step k writes ``values[k, j]`` at ``(rows, cols)[k, j]``.

    Points whose write does not survive (not visible, or overwritten) have ``keep`` False and a
    zero value, so summing all impulses gives exactly the official pre-blur map.
    """

    rows: torch.Tensor  # (F-1, 18) int64
    cols: torch.Tensor  # (F-1, 18) int64
    values: torch.Tensor  # (F-1, 18, 2) float64, (dx, dy) pixels
    keep: torch.Tensor  # (F-1, 18) bool

    def steps(self, start: int = 0, stop: int | None = None) -> StepImpulses:
        """The impulses of steps ``start:stop`` (views, no copy)."""
        part = slice(start, stop)
        return StepImpulses(self.rows[part], self.cols[part], self.values[part], self.keep[part])


def step_impulses(poses: PoseSequence, *, drop_vanishing: bool = False) -> StepImpulses:
    """Per-step displacement impulses of the body points (the official ``points_to_flows``).

    ``drop_vanishing=True`` is our fix for the official quirk: a point visible in frame k but not
    in frame k+1 then writes nothing instead of a displacement towards the image origin.
    """
    pos, visible = track_positions(poses)
    if pos.shape[0] < 2:
        raise InputError(
            "The sparse motion field needs the reference and at least one driving frame; "
            f"got {pos.shape[0]} frame(s). Use a driving video with at least one frame."
        )
    start, end = pos[:-1], pos[1:]
    valid = visible[:-1] & visible[1:] if drop_vanishing else visible[:-1]
    cols = start[..., 0].long()  # positions are clipped to >= 0, so long() is int() truncation
    rows = start[..., 1].long()
    keep = last_writer(rows, cols, valid)
    values = torch.where(keep[..., None], end - start, torch.zeros((), dtype=pos.dtype))
    return StepImpulses(rows, cols, values, keep)


def blur_impulses(
    impulses: StepImpulses,
    height: int,
    width: int,
    *,
    kernel_size: int = 199,
    sigma: float = 20.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(F-1, 2, H, W)`` float32: each step's impulses filtered like ``cv2.filter2D`` (reflect-101)."""
    steps, points = impulses.rows.shape
    f32 = torch.float32
    left = blur_columns(height, kernel_size, sigma, impulses.rows, f32).permute(1, 0, 2).to(device)  # (S, H, K)
    right = blur_columns(width, kernel_size, sigma, impulses.cols, f32).permute(1, 2, 0).to(device)  # (S, K, W)
    values = impulses.values.to(device=device, dtype=f32)  # (S, K, 2)
    weighted = left[:, None] * values.permute(0, 2, 1)[:, :, None, :]  # (S, 2, H, K): dx and dy stacked
    out = torch.bmm(weighted.reshape(steps, 2 * height, points), right)  # (S, 2H, W) = (S, 2, H, W) in memory
    return out.view(steps, 2, height, width)


def compute_motion_field(
    poses: PoseSequence,
    *,
    kernel_size: int = 199,
    sigma: float = 20.0,
    drop_vanishing: bool = False,
) -> MotionField:
    """Sparse motion field of ``poses`` (frame 0 = reference): step k is k -> k+1.

    Kept as its impulses: ``MotionField.fields`` blurs the steps asked for (one batched matrix
    product), so a long video never holds the whole full-canvas field.
    """
    check_kernel(kernel_size, sigma)
    impulses = step_impulses(poses, drop_vanishing=drop_vanishing)
    return MotionField(impulses=impulses, height=poses.height, width=poses.width, kernel_size=kernel_size,
                       sigma=sigma)
