"""Reference + driving video -> one person's PoseSequence (DWPose, tracking, filling, alignment).

Person rule: in the reference, the main person is the one with the largest detected box among
those with at least one visible body point. In the driving video the first frame with people
starts from its largest box; every later frame keeps the person whose box overlaps the previous
choice most (IoU), or, when no box overlaps it, the one whose box center is nearest.

A driving frame without a person (no box, or no visible body point) is filled from its
neighbours — coordinates linearly interpolated between the previous and next frames with a
person, scores the smaller of the two (nearest one at the ends) — and listed in
``PoseSequence.filled_frames`` (sequence indices: driving frame k is index k+1) and in a log
warning. No person in the reference, or in no driving frame at all, is an InputError.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..types import PoseSequence
from .align import Alignment, fit_alignment, single_person_bodies
from .dwpose import ImagePeople
from .frame import VISIBLE_SCORE, PoseFrame

log = logging.getLogger(__name__)

FIELDS = ("body", "body_score", "hands", "hands_score", "faces", "faces_score")
SCORE_FIELDS = ("body_score", "hands_score", "faces_score")


@dataclass
class _Choice:
    """The tracked person of one image: its PoseSequence fields and its box (None: no person)."""

    fields: dict[str, np.ndarray] | None
    box: np.ndarray | None


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / np.maximum(_area(box) + _area(boxes) - inter, 1e-9)


def _clean(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 copies; NaN/inf scores become 0 and non-finite points become (0, 0) with score 0."""
    out = {k: np.asarray(v, np.float32).copy() for k, v in fields.items() if k in FIELDS}
    for xy, sc in (("body", "body_score"), ("hands", "hands_score"), ("faces", "faces_score")):
        bad = ~np.isfinite(out[xy]).all(-1) | ~np.isfinite(out[sc])
        out[xy][bad] = 0.0
        out[sc][bad] = 0.0
    return out


def _people(image: ImagePeople) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Detected people with at least one visible body point (fields, boxes); none on a fallback."""
    if image.fallback:
        return [], np.zeros((0, 4))
    frame = image.frame()
    people = [_clean(frame.person(i)) for i in range(frame.num_people)]
    keep = [i for i, p in enumerate(people) if (p["body_score"] > VISIBLE_SCORE).any()]
    return [people[i] for i in keep], image.boxes[keep]


def _choose(image: ImagePeople, previous: np.ndarray | None) -> _Choice:
    people, boxes = _people(image)
    if not people:
        return _Choice(None, None)
    if previous is None:
        pick = int(np.argmax(_area(boxes)))
    else:
        iou = _box_iou(previous, boxes)
        if iou.max() > 0:
            pick = int(np.argmax(iou))
        else:
            centers = (boxes[:, :2] + boxes[:, 2:]) / 2
            pick = int(np.argmin(np.linalg.norm(centers - (previous[:2] + previous[2:]) / 2, axis=1)))
    return _Choice(people[pick], boxes[pick])


def _fill(choices: list[_Choice]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Stack the chosen people; frames without one are interpolated from their neighbours."""
    valid = np.array([c.fields is not None for c in choices])
    have = np.flatnonzero(valid)
    missing = np.flatnonzero(~valid)
    template = choices[have[0]].fields
    stacked = {k: np.zeros((len(choices),) + template[k].shape, np.float32) for k in FIELDS}
    for i in have:
        for k in FIELDS:
            stacked[k][i] = choices[i].fields[k]
    if len(missing):
        nxt = np.searchsorted(have, missing)
        before = have[np.clip(nxt - 1, 0, len(have) - 1)]
        after = have[np.clip(nxt, 0, len(have) - 1)]
        before = np.where(nxt == 0, after, before)
        after = np.where(nxt == len(have), before, after)
        span = np.maximum(after - before, 1)
        t = ((missing - before) / span).astype(np.float32)
        for k in FIELDS:
            a, b = stacked[k][before], stacked[k][after]
            if k in SCORE_FIELDS:
                stacked[k][missing] = np.minimum(a, b)
            else:
                tt = t.reshape((-1,) + (1,) * (a.ndim - 1))
                stacked[k][missing] = a + (b - a) * tt
    return stacked, missing.tolist()


def _fit(ref: dict[str, np.ndarray], frames: list[PoseFrame], fallback: list[bool], chosen: dict[str, np.ndarray],
         ref_hw: tuple[int, int], frame_hw: tuple[int, int], fit_on_empty_frames: bool) -> Alignment:
    """The official fit over single-person frames; if there is none, over the chosen people."""
    usable = [f for f, empty in zip(frames, fallback) if fit_on_empty_frames or not empty]
    _, bodies = single_person_bodies(usable)
    if len(bodies) == 0:
        log.warning("No driving frame shows exactly one person; aligning on the tracked person instead.")
        bodies = chosen["body"]
    subset = np.where(ref["body_score"] > VISIBLE_SCORE, 0.0, -1.0)
    return fit_alignment(ref["body"], subset, bodies, ref_hw, frame_hw)


def extract_poses(
    detector: Callable[[list[np.ndarray]], list[ImagePeople]],
    reference: np.ndarray,
    frames: np.ndarray,
    *,
    align: bool = True,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], None] | None = None,
    fit_on_empty_frames: bool = True,
) -> PoseSequence:
    """One person's poses: reference (frame 0, already on the generation canvas) + driving frames.

    ``detector`` is a DWPose (or anything mapping a list of RGB uint8 images to ImagePeople).
    ``align`` rescales the driving poses onto the reference body (official). With
    ``fit_on_empty_frames`` (official) a frame where nothing was detected still enters the fit
    with the pose DWPose estimated on the whole image; False leaves such frames out.
    """
    if reference.ndim != 3 or reference.shape[-1] != 3 or reference.dtype != np.uint8:
        raise InputError(f"The reference must be one (H, W, 3) uint8 image, got {reference.shape} {reference.dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0 or frames.dtype != np.uint8:
        raise InputError(f"The driving frames must be (N, H, W, 3) uint8 with N >= 1, got {frames.shape} {frames.dtype}.")
    total = len(frames) + 1
    (ref_people,) = detector([reference])
    ref = _choose(ref_people, None)
    if ref.fields is None:
        raise InputError("No person found in the reference image. Use a reference that shows one person "
                         "clearly (whole body if possible), or supply the reference pose as POSE_KEYPOINT.")
    if progress:
        progress(1, total)

    choices: list[_Choice] = []
    official: list[PoseFrame] = []
    empty: list[bool] = []
    previous = None
    for start in range(0, len(frames), max(1, batch_size)):
        if should_stop:
            should_stop()
        for people in detector(list(frames[start:start + batch_size])):
            choice = _choose(people, previous)
            previous = choice.box if choice.box is not None else previous
            choices.append(choice)
            official.append(people.frame())
            empty.append(people.fallback)
        if progress:
            progress(1 + len(choices), total)

    if all(c.fields is None for c in choices):
        raise InputError(f"No person found in any of the {len(frames)} driving frames. "
                         "Check that the driving video shows a person.")
    driving, missing = _fill(choices)
    if missing:
        log.warning("No person found in %d of %d driving frames (0-based: %s); filled from neighbouring frames.",
                    len(missing), len(frames), ", ".join(map(str, missing)))
    height, width = reference.shape[:2]
    if align:
        fit = _fit(ref.fields, official, empty, driving, (height, width), frames.shape[1:3], fit_on_empty_frames)
        for k in ("body", "hands", "faces"):
            driving[k] = fit.apply(driving[k]).astype(np.float32)

    stacked = {k: np.concatenate([ref.fields[k][None], driving[k]]) for k in FIELDS}
    visible = stacked["body_score"] > VISIBLE_SCORE
    subset = np.where(visible, np.arange(18, dtype=np.float32), np.float32(-1))
    return PoseSequence(
        body=stacked["body"], body_score=stacked["body_score"], body_subset=subset,
        hands=stacked["hands"], hands_score=stacked["hands_score"],
        faces=stacked["faces"], faces_score=stacked["faces_score"],
        height=int(height), width=int(width), filled_frames=tuple(int(m) + 1 for m in missing))
