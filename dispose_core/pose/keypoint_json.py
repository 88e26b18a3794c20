"""POSE_KEYPOINT interop with comfyui_controlnet_aux (DWPose / OpenPose Estimator nodes).

Their format is a list with one OpenPose-JSON dict per frame::

    {"people": [{"pose_keypoints_2d": [x, y, c] * 18, "face_keypoints_2d": [x, y, c] * 70,
                 "hand_left_keypoints_2d": [x, y, c] * 21, "hand_right_keypoints_2d": [...]}],
     "canvas_width": W, "canvas_height": H}

Body points are in OpenPose-18 order. A part may be ``null`` when nothing of it was found.
Their DWPose node writes pixel coordinates of the W x H canvas and c = 1.0 for a found point
(0, 0, 0 otherwise); their OpenPose node writes normalised 0..1 coordinates. Like their own
renderer we read a part as normalised when all its found coordinates lie within [0, 1], else as
pixels. Faces have 70 points there (68 + the two body eyes); we use the first 68.

``to_pose_keypoint`` writes pixels with c = 1.0 for visible points (body: score > 0.3; hands
and face: score >= 0.3, their threshold), reference frame first. Scores below are not kept:
a round trip keeps every visible point's position and visibility.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..image import cover_crop
from ..types import PoseSequence
from .align import Alignment, fit_alignment
from .frame import VISIBLE_SCORE
from .retarget import retarget_limbs
from .smooth import smooth_keypoints
from .people import Detected, build_scene, choose_driving, choose_reference
from .track import POINT_FIELDS, Person, clean, fill, has_body, to_sequence

PART_SIZES = {"pose_keypoints_2d": 18, "hand_left_keypoints_2d": 21, "hand_right_keypoints_2d": 21,
              "face_keypoints_2d": 68}
FORMAT_HINT = ("Expected POSE_KEYPOINT: a list of per-frame dicts with 'people' (each with 'pose_keypoints_2d' "
               "of 18 [x, y, c] triples) and 'canvas_width'/'canvas_height', as comfyui_controlnet_aux's "
               "DWPose/OpenPose Estimator nodes output.")
HAND_FACE_SCORE = 0.3


# ---------------------------------------------------------------- export
def _part(xy: np.ndarray, visible: np.ndarray, width: int, height: int) -> list[float] | None:
    if not visible.any():
        return None
    triples = np.zeros((len(xy), 3))
    triples[visible, :2] = xy[visible] * [width, height]
    triples[visible, 2] = 1.0
    return [float(v) for v in triples.ravel()]


def to_pose_keypoint(poses: PoseSequence) -> list[dict]:
    """One dict per frame (reference first), pixel coordinates of the poses' canvas."""
    w, h = poses.width, poses.height
    frames = []
    for f in range(poses.num_frames):
        body_visible = poses.body_subset[f] >= 0
        hands_visible = poses.hands_score[f] >= HAND_FACE_SCORE
        face_visible = poses.faces_score[f] >= HAND_FACE_SCORE
        eyes = [14, 15]
        face = _part(np.concatenate([poses.faces[f], poses.body[f][eyes]]),
                     np.concatenate([face_visible, body_visible[eyes] & face_visible.any()]), w, h)
        person = {
            "pose_keypoints_2d": _part(poses.body[f], body_visible, w, h) or [0.0] * 54,
            "face_keypoints_2d": face,
            "hand_left_keypoints_2d": _part(poses.hands[f, 0], hands_visible[0], w, h),
            "hand_right_keypoints_2d": _part(poses.hands[f, 1], hands_visible[1], w, h),
        }
        frames.append({"people": [person], "canvas_width": int(w), "canvas_height": int(h)})
    return frames


# ---------------------------------------------------------------- import
NO_DRIVING_FRAME = ("POSE_KEYPOINT needs the reference frame first and at least one driving frame (got {} frame(s)); "
                    "or connect a separate reference POSE_KEYPOINT.")


def frames_of(data: Sequence[Mapping] | Mapping | None, what: str = "The POSE_KEYPOINT input") -> list[Mapping]:
    """The frames of a POSE_KEYPOINT value (a single dict is one frame); an empty one is an InputError."""
    frames = [data] if isinstance(data, Mapping) else list(data or [])
    if not frames:
        raise InputError(f"{what} is empty (a list of no frames). Connect keypoints with at least one frame, "
                         "e.g. from comfyui_controlnet_aux's DWPose Estimator.")
    return frames


def _canvas(frame: Mapping, where: str) -> tuple[int, int]:
    try:
        h, w = int(frame["canvas_height"]), int(frame["canvas_width"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where} has no valid canvas_width/canvas_height. {FORMAT_HINT}") from None
    if h <= 0 or w <= 0:
        raise InputError(f"{where} has an empty canvas ({w}x{h}). {FORMAT_HINT}")
    return h, w


def _excerpt(values) -> str:
    """The start of a bad value, for a one-line message."""
    text = repr(values)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_part(values, key: str, height: int, width: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) normalised positions and (n,) scores; hidden points at (0, 0) with score 0."""
    n = PART_SIZES[key]
    xy, score = np.zeros((n, 2)), np.zeros(n)
    if not values:
        return xy, score
    try:
        arr = np.asarray(values, np.float64).ravel()
    except (TypeError, ValueError):  # text where numbers belong, or nested lists of uneven length
        raise InputError(f"{where}: '{key}' must be numbers, flat [x, y, c, ...] or [x, y, c] triples of even "
                         f"length; got {_excerpt(values)}. {FORMAT_HINT}") from None
    if len(arr) % 3 or len(arr) // 3 < n or (key == "pose_keypoints_2d" and len(arr) // 3 != n):
        raise InputError(f"{where}: '{key}' has {len(arr)} values, expected {n} [x, y, c] triples. {FORMAT_HINT}")
    triples = arr.reshape(-1, 3)[:n]
    found = np.nan_to_num(triples[:, 2], nan=0.0) > 0
    pts = triples[found, :2]
    normalised = bool(np.all(np.abs(pts) <= 1.0)) if found.any() else True
    xy[found] = pts if normalised else pts / [width, height]
    score[found] = np.clip(triples[found, 2], 0.0, 1.0)
    return xy, score


def _read_person(person: Mapping, height: int, width: int, where: str) -> Person:
    if not isinstance(person, Mapping):
        raise InputError(f"{where} is not a dict. {FORMAT_HINT}")
    parts = {key: _read_part(person.get(key), key, height, width, where) for key in PART_SIZES}
    (body, body_score), (face, face_score) = parts["pose_keypoints_2d"], parts["face_keypoints_2d"]
    (lh, lh_s), (rh, rh_s) = parts["hand_left_keypoints_2d"], parts["hand_right_keypoints_2d"]
    return clean({"body": body, "body_score": body_score, "hands": np.stack([lh, rh]),
                  "hands_score": np.stack([lh_s, rh_s]), "faces": face, "faces_score": face_score})


def _body_box(person: Person, height: int, width: int) -> np.ndarray:
    """Pixel box around the visible body points (the tracker's box for JSON sources)."""
    pts = person["body"][person["body_score"] > VISIBLE_SCORE] * [width, height]
    return np.concatenate([pts.min(0), pts.max(0)])


def _read_frame(frame, where: str) -> tuple[Detected, tuple[int, int]]:
    """The frame's people in their listed order with boxes around their visible body points (zero
    without one), and the frame's canvas (H, W)."""
    if not isinstance(frame, Mapping) or not isinstance(frame.get("people", []), Sequence):
        raise InputError(f"{where} is not an OpenPose dict. {FORMAT_HINT}")
    h, w = _canvas(frame, where)
    people = [_read_person(p, h, w, f"{where}, person {i}") for i, p in enumerate(frame.get("people") or [])]
    boxes = [_body_box(p, h, w) if has_body(p) else np.zeros(4) for p in people]
    return Detected(people, np.stack(boxes) if boxes else np.zeros((0, 4))), (h, w)


def _aligned(person: Person, fit: Alignment) -> Person:
    """``fit`` applied to the points present in the JSON; absent ones stay at (0, 0)."""
    out = dict(person)
    for xy, sc in POINT_FIELDS:
        out[xy] = np.where((person[sc] > 0)[..., None], fit.apply(person[xy]), 0.0)
    return out


def _onto_canvas(person: Person, src_hw: tuple[int, int], height: int, width: int) -> Person:
    """Follow ``fit_to_canvas``: positions on a src-sized image -> the (height, width) canvas."""
    if tuple(src_hw) == (height, width):
        return person
    rh, rw, top, left = cover_crop(src_hw[0], src_hw[1], height, width)
    scale = np.array([rw / width, rh / height])
    shift = np.array([left / width, top / height])
    out = dict(person)
    for xy, sc in POINT_FIELDS:
        moved = person[xy] * scale - shift
        out[xy] = np.where((person[sc] > 0)[..., None], moved, 0.0).astype(np.float32)
    return out


def from_pose_keypoint(data: Sequence[Mapping] | Mapping, *, height: int, width: int, align: bool = True,
                       reference: Sequence[Mapping] | Mapping | None = None, person: str = "official",
                       person_index: int = 0, empty_frames: str = "official", retarget: bool = False,
                       smooth_window: int = 0, smooth_max_shift: float = 8.0) -> PoseSequence:
    """POSE_KEYPOINT -> the chosen person's PoseSequence on the (height, width) generation canvas.

    Without ``reference``, ``data[0]`` is the reference frame and ``data[1:]`` the driving
    frames (the layout ``to_pose_keypoint`` writes); with it (one frame, e.g. the DWPose
    Estimator run on the reference image), all of ``data`` are driving frames. The reference
    is mapped onto the canvas like the reference image (cover-resize + center crop). People
    are chosen as in DWPose extraction (``people.py``; ``official``: each frame's first listed
    person, everyone drawn). Frames without people follow ``empty_frames``; the JSON carries no
    whole-image estimate, so ``official`` interpolates there. ``align`` fits the official rescale
    using only the points that are present in the JSON; ``retarget`` then gives every bone the
    reference's length (``retarget.py``, not official); ``smooth_*`` as in ``smooth.py``.
    """
    frames = frames_of(data)
    if reference is None:
        if len(frames) < 2:
            raise InputError(NO_DRIVING_FRAME.format(len(frames)))
        ref_frame, frames = frames[0], frames[1:]
    else:
        refs = frames_of(reference, "The reference POSE_KEYPOINT")
        if len(refs) != 1 or not frames:
            raise InputError(f"The reference POSE_KEYPOINT must hold exactly one frame (got {len(refs)}) "
                             f"and the driving POSE_KEYPOINT at least one (got {len(frames)}).")
        ref_frame = refs[0]

    ref, ref_hw = _read_frame(ref_frame, "Reference POSE_KEYPOINT frame")
    chosen, note = choose_reference(ref, person, person_index)
    if chosen is None:
        raise InputError("The reference POSE_KEYPOINT frame has no person with a visible body point.")
    ref_person = _onto_canvas(chosen, ref_hw, height, width)

    parsed = [_read_frame(f, f"POSE_KEYPOINT frame {k}") for k, f in enumerate(frames)]
    detected = [d for d, _ in parsed]
    empty = "interpolate" if empty_frames == "official" else empty_frames
    driving, missing = fill(choose_driving(detected, person, person_index), empty=empty)
    fit = Alignment.identity()
    if align:
        singles = [s[0] for s in (d.with_body()[0] for d in detected) if len(s) == 1]
        bodies = np.stack([s["body"] for s in singles]) if singles else driving["body"]
        visible = (np.stack([s["body_score"] for s in singles]) if singles else driving["body_score"]) > VISIBLE_SCORE
        subset = np.where(ref_person["body_score"] > VISIBLE_SCORE, 0.0, -1.0)
        fit = fit_alignment(ref_person["body"], subset, bodies, (height, width), parsed[0][1], driving_visible=visible)
        driving = _aligned(driving, fit)
    if retarget:
        driving = retarget_limbs(ref_person, driving, height, width)
    driving = smooth_keypoints(driving, height, width, window=smooth_window, max_shift=smooth_max_shift)
    poses = to_sequence(ref_person, driving, missing, height, width)
    if person == "official":
        ref_people = [ref_person] + [_onto_canvas(p, ref_hw, height, width) for p in ref.people[1:]]
        poses.scene = build_scene(ref_people, detected, driving, set(missing), lambda p: _aligned(p, fit))
    poses.note = note
    return poses
