"""Reference-anchored sparse flow, the input of CMP (golden G2; official ``sample_inputs_flow``).

For every driving frame t the flow of body point j is ``pos_t[j] - pos_ref[j]`` (pixels), written
at the truncated reference position of j, with a mask of ones there (both channels). CMP works on
a 384x384 grid: positions are rescaled with ``x / W * 384``, ``y / H * 384`` (any aspect ratio is
squashed) and truncated again, and the reference image is resized to 384x384 with legacy nearest.

Official quirks kept by default: the visibility is ignored, so a point missing in frame t gets the
flow ``(0, 0) - pos_ref`` and points missing in the reference all anchor at pixel (0, 0); duplicate
anchors: the later point index wins (what the official CPU run did; CUDA is unspecified there).
``mask_invisible=True`` is our fix: only points visible in both the reference and frame t write.
We checked the suspected x/y swap of the clamps for non-square frames: the official code flips
(x, y) to (row, col) before clamping, so rows are clamped to H-1 and columns to W-1 as they should
be; there is nothing to fix there (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..types import PoseSequence
from .splat import splat
from .tracks import track_positions

CMP_SIZE = 384  # CMP's fixed square input size


@dataclass
class AnchoredFlows:
    """Point form of the sparse flow on an (height, width) grid, densified per frame range on demand."""

    rows: torch.Tensor  # (18,) int64 anchor rows (reference positions)
    cols: torch.Tensor  # (18,) int64
    flows: torch.Tensor  # (T, 18, 2) float64 (dx, dy) in grid pixels, T = driving frames
    valid: torch.Tensor  # (T, 18) bool
    height: int
    width: int

    @property
    def num_steps(self) -> int:
        return int(self.flows.shape[0])

    def dense(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow ``(n, 2, h, w)`` (``dtype``) and mask ``(n, 2, h, w)`` uint8 for driving frames start..stop."""
        flows = self.flows[start:stop].to(device=device, dtype=dtype)
        n = flows.shape[0]
        rows = self.rows.to(device).expand(n, -1)
        cols = self.cols.to(device).expand(n, -1)
        flow, mask = splat(rows, cols, flows, self.valid[start:stop].to(device), self.height, self.width)
        return flow, mask[:, None].expand(-1, 2, -1, -1)


def anchored_flows(
    poses: PoseSequence, size: tuple[int, int] | None = None, *, mask_invisible: bool = False
) -> AnchoredFlows:
    """Reference-anchored flows of ``poses`` on the canvas (``size=None``) or an (h, w) grid."""
    pos, visible = track_positions(poses)
    if pos.shape[0] < 2:
        raise InputError(
            "The CMP sparse flow needs the reference and at least one driving frame; "
            f"got {pos.shape[0]} frame(s). Use a driving video with at least one frame."
        )
    h, w = (poses.height, poses.width) if size is None else (int(size[0]), int(size[1]))
    if (h, w) != (poses.height, poses.width):  # same operation order as the official rescale
        pos = torch.stack([pos[..., 0] / poses.width * w, pos[..., 1] / poses.height * h], dim=-1)
    ref = pos[0]
    cols = ref[:, 0].long().clamp(0, w - 1)
    rows = ref[:, 1].long().clamp(0, h - 1)
    valid = visible[1:] & visible[:1] if mask_invisible else torch.ones_like(visible[1:])
    return AnchoredFlows(rows, cols, pos[1:] - ref, valid, h, w)


def reference_sparse_flow(
    poses: PoseSequence, size: tuple[int, int] | None = None, *, mask_invisible: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense sparse flow ``(F-1, 2, h, w)`` float32 and mask uint8 (official ``sample_inputs_flow``)."""
    return anchored_flows(poses, size, mask_invisible=mask_invisible).dense()


def cmp_sparse_flow(poses: PoseSequence, *, mask_invisible: bool = False) -> AnchoredFlows:
    """The 384x384 sparse input of CMP in point form (densify batches with ``.dense``)."""
    return anchored_flows(poses, (CMP_SIZE, CMP_SIZE), mask_invisible=mask_invisible)


def cmp_image(reference: torch.Tensor) -> torch.Tensor:
    """Reference ``(3, H, W)`` -> ``(3, 384, 384)`` with PyTorch legacy nearest, as the official code."""
    if reference.ndim != 3 or reference.shape[0] != 3:
        raise InputError(
            f"Reference image has shape {tuple(reference.shape)}; expected (3, H, W). "
            "Pass one RGB image (the first image of an IMAGE batch)."
        )
    if (reference.shape[1], reference.shape[2]) == (CMP_SIZE, CMP_SIZE):
        return reference
    return F.interpolate(reference[None], size=(CMP_SIZE, CMP_SIZE), mode="nearest")[0]
