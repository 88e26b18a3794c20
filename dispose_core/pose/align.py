"""Rescale the driving poses onto the reference body, as the official ``get_video_pose`` does.

A line y_ref = ay * y + by is fitted by least squares between the y coordinates of the reference
body points (nose, neck, shoulders, hips, knees, ankles, eyes, ears that are visible in the
reference) and the same points of the driving frames — only frames with exactly one detected
person, and including points that are invisible in those frames (official behaviour). The x
scale follows from ay and the two aspect ratios, the x offset is the mean residual. Every
coordinate of every driving frame (bodies, hands, faces) is then mapped by (ax x + bx, ay y + by).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .frame import PoseFrame

log = logging.getLogger(__name__)

FIT_POINTS = (0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)


@dataclass(frozen=True, eq=False)
class Alignment:
    """Per-axis affine map of normalised coordinates: xy -> xy * scale + offset."""

    scale: np.ndarray  # (ax, ay)
    offset: np.ndarray  # (bx, by)

    @classmethod
    def identity(cls) -> "Alignment":
        return cls(np.ones(2), np.zeros(2))

    def apply(self, xy: np.ndarray) -> np.ndarray:
        return xy * self.scale + self.offset


def fit_points(ref_subset: np.ndarray) -> list[int]:
    """The fit's body points: those of FIT_POINTS that are visible (subset >= 0) in the reference."""
    return [i for i in FIT_POINTS if ref_subset[i] >= 0]


def single_person_bodies(frames: Sequence[PoseFrame]) -> tuple[list[int], np.ndarray]:
    """Indices and (N, 18, 2) bodies of the frames with exactly one person (the official fit set)."""
    used = [k for k, f in enumerate(frames) if f.num_people == 1]
    bodies = np.stack([frames[k].bodies()[0] for k in used]) if used else np.zeros((0, 18, 2))
    return used, bodies


def fit_alignment(ref_body: np.ndarray, ref_subset: np.ndarray, driving_bodies: np.ndarray,
                  ref_hw: tuple[int, int], frame_hw: tuple[int, int],
                  driving_visible: np.ndarray | None = None) -> Alignment:
    """Fit the official rescale of ``driving_bodies`` (N, 18, 2) onto ``ref_body`` (18, 2).

    ``ref_hw`` is the reference canvas (H, W), ``frame_hw`` the driving frames' (fh, fw).
    Officially driving points enter the fit visible or not (DWPose still places them); pass
    ``driving_visible`` (N, 18) bool to use only visible ones, for sources such as POSE_KEYPOINT
    where hidden points have no position.
    """
    points = fit_points(ref_subset)
    if not points:
        raise InputError("No body point of the reference pose is visible, so the driving poses cannot be "
                         "aligned to it. Use a reference image that shows the person's body, or turn align off.")
    if len(driving_bodies) == 0:
        raise InputError("No driving frame has a detected person to align. Check the driving video.")
    ref = np.tile(ref_body[points], (len(driving_bodies), 1))
    drv = driving_bodies[:, points].reshape(-1, 2)
    if driving_visible is not None:
        keep = driving_visible[:, points].ravel()
        ref, drv = ref[keep], drv[keep]
    ys = drv[:, 1]
    if len(ys) < 2 or not np.all(np.isfinite(ys)) or np.ptp(ys) == 0:
        log.warning("Pose alignment skipped: the driving body points have no vertical extent to fit.")
        return Alignment.identity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.RankWarning)
        ay, by = np.polyfit(ys, ref[:, 1], 1)
    (height, width), (fh, fw) = ref_hw, frame_hw
    ax = ay / (fh / fw / height * width)
    bx = np.mean(ref[:, 0] - drv[:, 0] * ax)
    return Alignment(np.array([ax, ay]), np.array([bx, by]))
