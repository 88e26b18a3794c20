"""Which person of each image drives the animation, and who is drawn (DWPose and POSE_KEYPOINT).

- ``official``: in every image the first person, i.e. the detection with the highest box score
  (the official ``pose2track``, ``point_adapter`` and DIFT code read ``subset[0]`` and the first
  18 candidates), and the skeleton images show every detected person (the official ``draw_pose``
  draws them all);
- ``largest_tracked``: the largest person, tracked by box overlap (``track.py``), alone drawn;
- ``by_index``: the ``person_index``-th person from the left in the reference; in the video the
  same index in the first frame with people (the largest when it shows fewer), then tracked,
  alone drawn.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .frame import PoseFrame
from .track import Choice, Person, choose, has_body, track

log = logging.getLogger(__name__)

PERSON_CHOICES = ("official", "largest_tracked", "by_index")


def check_person(person: str) -> None:
    if person not in PERSON_CHOICES:
        raise InputError(f"Unknown person choice '{person}'; pick one of {', '.join(PERSON_CHOICES)}.")


@dataclass
class Detected:
    """One image's people in detector order (highest box score first), NaN-cleaned."""

    people: list[Person]  # DWPose fallback: the one whole-image estimate
    boxes: np.ndarray  # (k, 4) pixels; k = 0 when nobody was detected

    @property
    def fallback(self) -> bool:
        return len(self.boxes) == 0

    def with_body(self) -> tuple[list[Person], np.ndarray]:
        """Detected people with at least one visible body point and their boxes (none on a fallback)."""
        if self.fallback:
            return [], np.zeros((0, 4))
        keep = [i for i, p in enumerate(self.people) if has_body(p)]
        return [self.people[i] for i in keep], self.boxes[keep]

    def first(self) -> Choice:
        """The official choice: the first detection (none on a fallback)."""
        return Choice(None, None) if self.fallback else Choice(self.people[0], self.boxes[0])


def choose_reference(ref: Detected, person: str, index: int) -> tuple[Person | None, str]:
    """The reference person (None: nobody with a visible body point) and a note saying which one
    was taken when there are several."""
    check_person(person)
    if person == "official":
        choice = ref.first()
        count, rule = len(ref.boxes), "the highest detector score (official)"
    else:
        people, boxes = ref.with_body()
        count = len(people)
        if person == "by_index" and people and not 0 <= index < count:
            raise InputError(f"person_index is {index}, but the reference image shows {count} person(s) "
                             f"(0-based, counted from the left). Pick 0..{count - 1}.")
        choice = choose(people, boxes, None, index if person == "by_index" else None)
        rule = f"person {index} from the left" if person == "by_index" else "the largest person"
    if choice.person is None or not has_body(choice.person):
        return None, ""
    if count <= 1:
        return choice.person, ""
    x0, y0, x1, y1 = (int(round(v)) for v in choice.box)
    note = (f"The reference image shows {count} people; animating {rule}, box x {x0}-{x1}, y {y0}-{y1} px. "
            "Switch 'person' to largest_tracked or by_index to pick another.")
    log.warning(note)
    return choice.person, note


def choose_driving(detected: list[Detected], person: str, index: int) -> list[Choice]:
    """The chosen person of every driving frame (None where the rule finds nobody)."""
    check_person(person)
    if person == "official":
        return [d.first() for d in detected]
    return track((d.with_body() for d in detected), index if person == "by_index" else None)


def build_scene(ref_people: list[Person], detected: list[Detected], driving: Person, filled: set[int],
                move: Callable[[Person], Person]) -> tuple[PoseFrame, ...]:
    """Every person as the official skeleton images show them: the reference's, then per frame the
    chosen one (the first, final ``driving`` pose) and the others moved by ``move`` (the
    alignment); a frame in ``filled`` shows only its filled pose."""
    frames = [PoseFrame.from_people(ref_people)]
    for k, d in enumerate(detected):
        chosen = {f: v[k] for f, v in driving.items()}
        others = [] if k in filled else [move(p) for p in d.people[1:]]
        frames.append(PoseFrame.from_people([chosen] + others))
    return tuple(frames)
