"""One person through a video: choose, track, fill gaps, stack into a PoseSequence.

Shared by DWPose extraction and the POSE_KEYPOINT reader. Tracked person rules (among people
with at least one visible body point): the video starts from its first frame with people, taking
the largest box (or, with an index, the index-th person counted from the left by box center,
when there are that many); then it keeps the person whose box overlaps the previous choice most
(IoU), or, when no box overlaps it, the one whose box center is nearest. (The official choice,
the first detection of each frame, and the switch between the rules live in ``people.py``.)

A frame without a person is filled by the empty-frame policy (``EMPTY_FRAMES``): ``interpolate``
linearly interpolates the coordinates between the previous and next frames with a person, scores
the smaller of the two (the nearest frame at the ends); ``hold`` repeats the last pose (the first
one before any was found); ``official`` takes a pose given per frame (DWPose's whole-image
estimate). Filled frames are reported in ``PoseSequence.filled_frames`` (sequence indices:
driving frame k is index k+1) and in a log warning.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..types import PoseSequence
from .frame import VISIBLE_SCORE

log = logging.getLogger(__name__)

FIELDS = ("body", "body_score", "hands", "hands_score", "faces", "faces_score")
POINT_FIELDS = (("body", "body_score"), ("hands", "hands_score"), ("faces", "faces_score"))

Person = dict[str, np.ndarray]  # PoseSequence fields of one person in one frame (no frame axis)


@dataclass
class Choice:
    """The tracked person of one frame (None: no person) and its box."""

    person: Person | None
    box: np.ndarray | None


def clean(person: Person) -> Person:
    """float32 copies; NaN/inf scores become 0 and non-finite points become (0, 0) with score 0."""
    out = {k: np.asarray(person[k], np.float32).copy() for k in FIELDS}
    for xy, sc in POINT_FIELDS:
        bad = ~np.isfinite(out[xy]).all(-1) | ~np.isfinite(out[sc])
        out[xy][bad] = 0.0
        out[sc][bad] = 0.0
    return out


def has_body(person: Person) -> bool:
    return bool((person["body_score"] > VISIBLE_SCORE).any())


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    inter = _area(np.concatenate([np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])], 1))
    return inter / np.maximum(_area(box) + _area(boxes) - inter, 1e-9)


def choose(people: list[Person], boxes: np.ndarray, previous: np.ndarray | None, index: int | None = None) -> Choice:
    """The main person (largest box, or the ``index``-th from the left when there are that many)
    or, with a previous box, the tracked one."""
    if not people:
        return Choice(None, None)
    if previous is None and index is not None and index < len(people):
        pick = int(np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")[index])
    elif previous is None:
        pick = int(np.argmax(_area(boxes)))
    else:
        iou = _iou(previous, boxes)
        if iou.max() > 0:
            pick = int(np.argmax(iou))
        else:
            centers = (boxes[:, :2] + boxes[:, 2:]) / 2
            pick = int(np.argmin(np.linalg.norm(centers - (previous[:2] + previous[2:]) / 2, axis=1)))
    return Choice(people[pick], boxes[pick])


def track(frames: Iterable[tuple[list[Person], np.ndarray]], index: int | None = None) -> list[Choice]:
    """Choose per frame, each time against the last frame that had a person."""
    choices, previous = [], None
    for people, boxes in frames:
        choice = choose(people, boxes, previous, index)
        previous = choice.box if choice.box is not None else previous
        choices.append(choice)
    return choices


EMPTY_FRAMES = ("official", "interpolate", "hold")
_FILLED_BY = {"official": "used DWPose's whole-image pose estimate (official)",
              "interpolate": "filled from neighbouring frames", "hold": "repeated the last pose"}


def fill(choices: list[Choice], what: str = "driving frames", empty: str = "interpolate",
         whole_image: list[Person | None] | None = None) -> tuple[Person, list[int]]:
    """Stack the chosen people over the frames (leading axis); frames without one follow ``empty``.

    ``whole_image`` gives the pose the ``official`` policy takes for each frame.
    """
    if empty not in EMPTY_FRAMES:
        raise InputError(f"Unknown empty-frame policy '{empty}'; pick one of {', '.join(EMPTY_FRAMES)}.")
    have = np.flatnonzero([c.person is not None for c in choices])
    if len(have) == 0:
        raise InputError(f"No person found in any of the {len(choices)} {what} (0-based frames 0-"
                         f"{len(choices) - 1}). Check that the driving video shows a person.")
    missing = np.setdiff1d(np.arange(len(choices)), have)
    template = choices[have[0]].person
    stacked = {k: np.zeros((len(choices),) + template[k].shape, np.float32) for k in FIELDS}
    for i in have:
        for k in FIELDS:
            stacked[k][i] = choices[i].person[k]
    if empty == "official" and len(missing):
        for i in missing:
            for k in FIELDS:
                stacked[k][i] = whole_image[i][k]
    elif len(missing):
        nxt = np.searchsorted(have, missing)
        before = np.where(nxt == 0, have[0], have[np.maximum(nxt - 1, 0)])
        after = np.where(nxt == len(have), have[-1], have[np.minimum(nxt, len(have) - 1)])
        after = before if empty == "hold" else after
        t = ((missing - before) / np.maximum(after - before, 1)).astype(np.float32)
        for k in FIELDS:
            a, b = stacked[k][before], stacked[k][after]
            if k.endswith("score"):
                stacked[k][missing] = np.minimum(a, b)
            else:
                stacked[k][missing] = a + (b - a) * t.reshape((-1,) + (1,) * (a.ndim - 1))
    if len(missing):
        log.warning("No person found in %d of %d %s (0-based: %s); %s.", len(missing), len(choices), what,
                    ", ".join(map(str, missing.tolist())), _FILLED_BY[empty])
    return stacked, missing.tolist()


def to_sequence(reference: Person, driving: Person, missing: list[int], height: int, width: int) -> PoseSequence:
    """Reference person (frame 0) + stacked driving people -> PoseSequence (subset from scores)."""
    stacked = {k: np.concatenate([reference[k][None], driving[k]]).astype(np.float32) for k in FIELDS}
    subset = np.where(stacked["body_score"] > VISIBLE_SCORE, np.arange(18, dtype=np.float32), np.float32(-1))
    return PoseSequence(
        body=stacked["body"], body_score=stacked["body_score"], body_subset=subset,
        hands=stacked["hands"], hands_score=stacked["hands_score"],
        faces=stacked["faces"], faces_score=stacked["faces_score"],
        height=int(height), width=int(width), filled_frames=tuple(int(m) + 1 for m in missing))
