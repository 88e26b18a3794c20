"""Optional keypoint smoothing over time against DWPose jitter (the official run has none).

A Savitzky-Golay filter (quadratic, ``window`` frames) runs over each keypoint's x and y track.
Only visible positions (score > 0.3) count: hidden ones are bridged linearly for the filter and
keep their own values afterwards. ``max_shift`` caps how far (in canvas pixels) smoothing may move
a point, so fast real motion is not flattened. Window 0 (or a video shorter than the window)
leaves the poses as they are.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .frame import VISIBLE_SCORE
from .track import POINT_FIELDS, Person

POLY_ORDER = 2


def _bridge(track: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(F,) positions with hidden frames linearly filled from the visible ones (ends held)."""
    frames = np.arange(len(track))
    return np.interp(frames, frames[visible], track[visible])


def smooth_keypoints(driving: Person, height: int, width: int, *, window: int = 0,
                     max_shift: float = 8.0) -> Person:
    """``driving`` (stacked over frames, normalised to the canvas) smoothed; the input is not modified."""
    from scipy.signal import savgol_filter

    if window == 0:
        return driving
    if window < POLY_ORDER + 1 or window % 2 == 0 or max_shift < 0:
        raise InputError(f"Keypoint smoothing needs an odd window of at least {POLY_ORDER + 1} frames (0 = off) "
                         f"and max_shift >= 0 pixels; got window {window}, max_shift {max_shift}.")
    frames = driving["body"].shape[0]
    if frames < window:
        return driving
    px = np.array([width, height], np.float64)
    out = {k: v.copy() for k, v in driving.items()}
    for xy, sc in POINT_FIELDS:
        points = driving[xy].astype(np.float64) * px  # (F, ..., 2)
        visible = driving[sc] > VISIBLE_SCORE  # (F, ...)
        flat_p = points.reshape(frames, -1, 2)
        flat_v = visible.reshape(frames, -1)
        smoothed = flat_p.copy()
        for k in np.flatnonzero(flat_v.sum(0) >= 2):
            bridged = np.stack([_bridge(flat_p[:, k, c], flat_v[:, k]) for c in (0, 1)], -1)
            filtered = savgol_filter(bridged, window, POLY_ORDER, axis=0, mode="interp")
            shift = filtered - flat_p[:, k]
            norm = np.linalg.norm(shift, axis=-1, keepdims=True)
            shift *= np.minimum(1.0, max_shift / np.maximum(norm, 1e-9))
            smoothed[:, k] = np.where(flat_v[:, k, None], flat_p[:, k] + shift, flat_p[:, k])
        out[xy] = (smoothed.reshape(points.shape) / px).astype(np.float32)
    return out
