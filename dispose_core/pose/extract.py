"""Reference + driving video -> the chosen person's PoseSequence with DWPose.

Which person (``PERSON_CHOICES``):
- ``official``: in every image the first detection, i.e. the box with the highest detector score
  (the official ``pose2track`` reads ``subset[0]`` and the first 18 candidates), and the skeleton
  images show every detected person (the official ``draw_pose`` draws them all);
- ``largest_tracked``: the largest person, tracked by box overlap (``track.py``), alone drawn;
- ``by_index``: the ``person_index``-th person from the left in the reference; in the video the
  same index in the first frame with people (the largest when it shows fewer), then tracked,
  alone drawn.
The chosen person drives the alignment fit, the motion fields, CMP and the DIFT points.

Frames where the detector finds nobody follow ``empty_frames`` (``track.EMPTY_FRAMES``); the
official code runs the pose net on the whole image then (onnxpose.py ``preprocess``) and uses
that pose like a detection, which ``official`` does too. The driving poses are aligned to the
reference body as the official ``get_video_pose`` does (``align.py``), optionally followed by
per-limb retargeting (``retarget.py``). No person in the reference, or in no driving frame at
all, is an InputError.
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
from .retarget import retarget_limbs
from .smooth import smooth_keypoints
from .track import EMPTY_FRAMES, Choice, Person, choose, clean, fill, has_body, to_sequence, track

log = logging.getLogger(__name__)

PERSON_CHOICES = ("official", "largest_tracked", "by_index")


@dataclass
class _Detected:
    """One image's people in detector order (highest box score first), NaN-cleaned."""

    people: list[Person]  # on a fallback: the one whole-image estimate
    boxes: np.ndarray  # (k, 4); k = 0 on a fallback
    frame: PoseFrame  # the official dict, for the alignment fit

    @classmethod
    def of(cls, image: ImagePeople) -> "_Detected":
        frame = image.frame()
        return cls([clean(frame.person(i)) for i in range(frame.num_people)], image.boxes, frame)

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


def _choose_reference(ref: _Detected, person: str, index: int) -> tuple[Person, str]:
    """The reference person and a note saying which one was taken when there are several."""
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
        raise InputError("No person found in the reference image. Use a reference that shows one person "
                         "clearly (whole body if possible), or supply the reference pose as POSE_KEYPOINT.")
    if count <= 1:
        return choice.person, ""
    x0, y0, x1, y1 = (int(round(v)) for v in choice.box)
    note = (f"The reference image shows {count} people; animating {rule}, box x {x0}-{x1}, y {y0}-{y1} px. "
            "Switch 'person' to largest_tracked or by_index to pick another.")
    log.warning(note)
    return choice.person, note


def _fit(reference: Person, frames: list[PoseFrame], empty: list[bool], driving: Person,
         ref_hw: tuple[int, int], frame_hw: tuple[int, int], fit_on_empty_frames: bool) -> Alignment:
    """The official fit over single-person frames; with none (official: crash), over the chosen person."""
    usable = [f for f, e in zip(frames, empty) if fit_on_empty_frames or not e]
    _, bodies = single_person_bodies(usable)
    if len(bodies) == 0:
        log.warning("No driving frame shows exactly one person; aligning on the chosen person instead.")
        bodies = driving["body"]
    subset = np.where(reference["body_score"] > VISIBLE_SCORE, 0.0, -1.0)
    return fit_alignment(reference["body"], subset, bodies, ref_hw, frame_hw)


def _scene(ref: _Detected, detected: list[_Detected], driving: Person, missing: list[int], empty: str,
           fit: Alignment) -> tuple[PoseFrame, ...]:
    """Every person as the official skeleton images show them: the chosen one (the first, final
    ``driving`` pose) and the others aligned by ``fit``; a frame filled by interpolate or hold
    shows only its filled pose."""
    filled = set(missing) if empty != "official" else set()
    frames = [PoseFrame.from_people(ref.people)]
    for k, d in enumerate(detected):
        chosen = {f: v[k] for f, v in driving.items()}
        others = [] if k in filled else [{**p, **{f: fit.apply(p[f]) for f in ("body", "hands", "faces")}}
                                         for p in d.people[1:]]
        frames.append(PoseFrame.from_people([chosen] + others))
    return tuple(frames)


def extract_poses(
    detector: Callable[[list[np.ndarray]], list[ImagePeople]],
    reference: np.ndarray,
    frames: np.ndarray,
    *,
    align: bool = True,
    person: str = "official",
    person_index: int = 0,
    empty_frames: str = "official",
    retarget: bool = False,
    smooth_window: int = 0,
    smooth_max_shift: float = 8.0,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], None] | None = None,
    fit_on_empty_frames: bool = True,
) -> PoseSequence:
    """The chosen person's poses: reference (frame 0, already on the generation canvas) + driving frames.

    ``detector`` is a DWPose (or anything mapping a list of RGB uint8 images to ImagePeople).
    ``person`` is one of ``PERSON_CHOICES`` (``person_index`` for ``by_index``), ``empty_frames``
    one of ``track.EMPTY_FRAMES``; both default to the official behaviour. ``align`` rescales the
    driving poses onto the reference body (official); without it the driving poses keep their
    frame-normalised coordinates. ``retarget`` (not official) then gives every bone the
    reference's length, keeping its driving direction (``retarget.py``); ``smooth_window`` > 0
    (frames, odd; not official) smooths the driving keypoints over time, moving none by more than
    ``smooth_max_shift`` canvas pixels (``smooth.py``). With ``fit_on_empty_frames`` (official) a frame where nothing
    was detected still enters the fit with the pose DWPose estimated on the whole image; False
    leaves such frames out. ``progress(done, total)`` is called after the reference and after
    each batch (total = frames + 1); ``should_stop()`` is called before each batch and may raise.
    """
    if reference.ndim != 3 or reference.shape[-1] != 3 or reference.dtype != np.uint8:
        raise InputError(f"The reference must be one (H, W, 3) uint8 image, got {reference.shape} {reference.dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0 or frames.dtype != np.uint8:
        raise InputError(f"The driving frames must be (N, H, W, 3) uint8 with N >= 1, got {frames.shape} {frames.dtype}.")
    if person not in PERSON_CHOICES:
        raise InputError(f"Unknown person choice '{person}'; pick one of {', '.join(PERSON_CHOICES)}.")
    if empty_frames not in EMPTY_FRAMES:
        raise InputError(f"Unknown empty-frame policy '{empty_frames}'; pick one of {', '.join(EMPTY_FRAMES)}.")
    total = len(frames) + 1
    (ref_image,) = detector([reference])
    ref = _Detected.of(ref_image)
    ref_person, note = _choose_reference(ref, person, person_index)
    if progress:
        progress(1, total)

    detected: list[_Detected] = []
    for start in range(0, len(frames), max(1, batch_size)):
        if should_stop:
            should_stop()
        detected.extend(_Detected.of(image) for image in detector(list(frames[start:start + batch_size])))
        if progress:
            progress(1 + len(detected), total)

    if person == "official":
        choices = [d.first() for d in detected]
    else:
        choices = track((d.with_body() for d in detected), person_index if person == "by_index" else None)
    driving, missing = fill(choices, empty=empty_frames, whole_image=[d.people[0] for d in detected])
    height, width = reference.shape[:2]
    fit = Alignment.identity()
    if align:
        fit = _fit(ref_person, [d.frame for d in detected], [d.fallback for d in detected], driving,
                   (height, width), frames.shape[1:3], fit_on_empty_frames)
    for k in ("body", "hands", "faces"):
        driving[k] = fit.apply(driving[k])
    if retarget:
        driving = retarget_limbs(ref_person, driving, height, width)
    driving = smooth_keypoints(driving, height, width, window=smooth_window, max_shift=smooth_max_shift)
    scene = _scene(ref, detected, driving, missing, empty_frames, fit) if person == "official" else None
    poses = to_sequence(ref_person, driving, missing, height, width)
    poses.scene, poses.note = scene, note
    return poses
