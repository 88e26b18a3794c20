"""Reference + driving video -> one person's PoseSequence with DWPose.

The person is chosen and tracked, frames without a person are filled from their neighbours
(rules in ``track.py``), and the driving poses are aligned to the reference body as the official
``get_video_pose`` does (``align.py``). No person in the reference, or in no driving frame at
all, is an InputError.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..types import PoseSequence
from .align import Alignment, fit_alignment, single_person_bodies
from .dwpose import ImagePeople
from .frame import VISIBLE_SCORE, PoseFrame
from .track import Person, choose, clean, fill, has_body, to_sequence, track

log = logging.getLogger(__name__)


def _people(image: ImagePeople, frame: PoseFrame) -> tuple[list[Person], np.ndarray]:
    """Detected people (``frame`` = ``image.frame()``) with at least one visible body point and
    their boxes; none on a fallback."""
    if image.fallback:
        return [], np.zeros((0, 4))
    people = [clean(frame.person(i)) for i in range(frame.num_people)]
    keep = [i for i, p in enumerate(people) if has_body(p)]
    return [people[i] for i in keep], image.boxes[keep]


def _fit(reference: Person, frames: list[PoseFrame], empty: list[bool], driving: Person,
         ref_hw: tuple[int, int], frame_hw: tuple[int, int], fit_on_empty_frames: bool) -> Alignment:
    """The official fit over single-person frames; with none (official: crash), over the tracked person."""
    usable = [f for f, e in zip(frames, empty) if fit_on_empty_frames or not e]
    _, bodies = single_person_bodies(usable)
    if len(bodies) == 0:
        log.warning("No driving frame shows exactly one person; aligning on the tracked person instead.")
        bodies = driving["body"]
    subset = np.where(reference["body_score"] > VISIBLE_SCORE, 0.0, -1.0)
    return fit_alignment(reference["body"], subset, bodies, ref_hw, frame_hw)


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
    ``align`` rescales the driving poses onto the reference body (official); without it the
    driving poses keep their frame-normalised coordinates. With ``fit_on_empty_frames``
    (official) a frame where nothing was detected still enters the fit with the pose DWPose
    estimated on the whole image; False leaves such frames out. ``progress(done, total)`` is
    called after the reference and after each batch (total = frames + 1); ``should_stop()`` is
    called before each batch and may raise to interrupt.
    """
    if reference.ndim != 3 or reference.shape[-1] != 3 or reference.dtype != np.uint8:
        raise InputError(f"The reference must be one (H, W, 3) uint8 image, got {reference.shape} {reference.dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0 or frames.dtype != np.uint8:
        raise InputError(f"The driving frames must be (N, H, W, 3) uint8 with N >= 1, got {frames.shape} {frames.dtype}.")
    total = len(frames) + 1
    (ref_image,) = detector([reference])
    ref = choose(*_people(ref_image, ref_image.frame()), None)
    if ref.person is None:
        raise InputError("No person found in the reference image. Use a reference that shows one person "
                         "clearly (whole body if possible), or supply the reference pose as POSE_KEYPOINT.")
    if progress:
        progress(1, total)

    official: list[PoseFrame] = []  # every person of every frame, for the official fit
    empty: list[bool] = []

    def detected():
        for start in range(0, len(frames), max(1, batch_size)):
            if should_stop:
                should_stop()
            for image in detector(list(frames[start:start + batch_size])):
                frame = image.frame()
                official.append(frame)
                empty.append(image.fallback)
                yield _people(image, frame)
            if progress:
                progress(1 + len(official), total)

    choices = track(detected())
    driving, missing = fill(choices)
    height, width = reference.shape[:2]
    if align:
        fit = _fit(ref.person, official, empty, driving, (height, width), frames.shape[1:3], fit_on_empty_frames)
        for k in ("body", "hands", "faces"):
            driving[k] = fit.apply(driving[k])
    return to_sequence(ref.person, driving, missing, height, width)
