"""Per-limb retargeting: the driving motion on the reference body's proportions.

The official alignment (``align.py``) is one linear map for the whole video, so a driver with
long legs gives a reference with short legs long legs. This option goes further: the neck stays
where the linear fit put it, and walking the OpenPose-18 skeleton outwards from it every bone
keeps the driving frame's direction but takes the reference's length (measured in canvas pixels,
so directions are not skewed by the canvas aspect). A bone that is not visible in the reference
keeps its driving length; a point not visible in the driving frame just moves with its parent.
Each hand follows its wrist and is scaled by the forearm's length ratio, the face follows the
nose, scaled by the head bone's (neck-nose) ratio.
"""
from __future__ import annotations

import numpy as np

from .frame import VISIBLE_SCORE
from .track import Person

# (parent, child) in OpenPose-18 order, parents before children, starting at the neck (1)
BONES = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
HAND_ANCHORS = ((6, 7), (3, 4))  # (elbow, wrist) of hands[0] (left) and hands[1] (right)
FACE_ANCHOR = (1, 0)  # neck -> nose


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(b - a, axis=-1)


def retarget_limbs(reference: Person, driving: Person, height: int, width: int) -> Person:
    """``driving`` (stacked over frames, normalised to the (height, width) canvas) with the
    reference's bone lengths; the input is not modified."""
    px = np.array([width, height], np.float64)
    ref = reference["body"].astype(np.float64) * px
    ref_ok = reference["body_score"] > VISIBLE_SCORE
    drv = driving["body"].astype(np.float64) * px  # (F, 18, 2)
    drv_ok = driving["body_score"] > VISIBLE_SCORE
    out = drv.copy()
    for parent, child in BONES:
        vec = drv[:, child] - drv[:, parent]
        length = np.linalg.norm(vec, axis=-1, keepdims=True)
        use_ref = ref_ok[parent] & ref_ok[child] & drv_ok[:, parent] & drv_ok[:, child] & (length[:, 0] > 0)
        scale = np.where(use_ref[:, None], _length(ref[parent], ref[child]) / np.maximum(length, 1e-9), 1.0)
        out[:, child] = out[:, parent] + vec * scale

    result = {k: v.copy() for k, v in driving.items()}
    result["body"] = (out / px).astype(np.float32)
    hands = driving["hands"].astype(np.float64) * px  # (F, 2, 21, 2)
    for side, (elbow, wrist) in enumerate(HAND_ANCHORS):
        hands[:, side] = _follow(hands[:, side], drv, out, elbow, wrist)
    result["hands"] = (hands / px).astype(np.float32)
    faces = driving["faces"].astype(np.float64) * px
    result["faces"] = (_follow(faces, drv, out, *FACE_ANCHOR) / px).astype(np.float32)
    return result


def _follow(points: np.ndarray, before: np.ndarray, after: np.ndarray, base: int, joint: int) -> np.ndarray:
    """(F, n, 2) points moved with ``joint`` and scaled around it by the base->joint bone's change."""
    ratio = _length(after[:, base], after[:, joint]) / np.maximum(_length(before[:, base], before[:, joint]), 1e-9)
    ratio = np.where(_length(before[:, base], before[:, joint]) > 0, ratio, 1.0)[:, None, None]
    moved = after[:, joint, None] + (points - before[:, joint, None]) * ratio
    return np.where((points == 0).all(-1, keepdims=True), 0.0, moved)  # hidden POSE_KEYPOINT points stay at 0
