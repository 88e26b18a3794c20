"""Reference + driving video -> the chosen person's PoseSequence with DWPose.

Which person is chosen and drawn: ``people.py`` (``PERSON_CHOICES``, official by default). The
chosen person drives the alignment fit, the motion fields, CMP and the DIFT points.

Frames where the detector finds nobody follow ``empty_frames`` (``track.EMPTY_FRAMES``); the
official code runs the pose net on the whole image then (onnxpose.py ``preprocess``) and uses
that pose like a detection, which ``official`` does too. The driving poses are aligned to the
reference body as the official ``get_video_pose`` does (``align.py``), optionally followed by
per-limb retargeting (``retarget.py``). No person in the reference, or in no driving frame at
all, is an InputError.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator

import numpy as np

from ..errors import InputError
from ..types import PoseSequence
from .align import Alignment, fit_alignment, single_person_bodies
from .dwpose import ImagePeople
from .frame import VISIBLE_SCORE, PoseFrame
from .people import Detected, build_scene, check_person, choose_driving, choose_reference
from .retarget import retarget_limbs
from .smooth import smooth_keypoints
from .track import EMPTY_FRAMES, Person, clean, fill, to_sequence

log = logging.getLogger(__name__)


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


def _detected(image: ImagePeople) -> tuple[Detected, PoseFrame]:
    """Our view of one DWPose result and the official dict (for the alignment fit)."""
    frame = image.frame()
    return Detected([clean(frame.person(i)) for i in range(frame.num_people)], image.boxes), frame


def _batches(frames: Collection[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """The driving frames in lists of ``size``, each checked as it arrives: (H, W, 3) uint8, one size."""
    batch: list[np.ndarray] = []
    first = None
    for index, frame in enumerate(frames):
        first = frame.shape if first is None else first
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 or frame.shape != first:
            raise InputError(f"The driving frames must be (H, W, 3) uint8 images of one size; frame {index} is "
                             f"{frame.shape} {frame.dtype} (frame 0: {first}).")
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def extract_poses(
    detector: Callable[[list[np.ndarray]], list[ImagePeople]],
    reference: np.ndarray,
    frames: Collection[np.ndarray],
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

    ``frames``: the driving frames as (H, W, 3) uint8, an (N, H, W, 3) array or any sized iterable
    (``video.KeptFrames`` decodes them one at a time); they are read once, ``batch_size`` at a time,
    and not kept, so a long video costs one batch of frames.

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
    each batch (total = frames + 1); ``should_stop()`` is called before each batch (and after the last)
    and may raise.
    """
    if reference.ndim != 3 or reference.shape[-1] != 3 or reference.dtype != np.uint8:
        raise InputError(f"The reference must be one (H, W, 3) uint8 image, got {reference.shape} {reference.dtype}.")
    if len(frames) == 0:
        raise InputError("There are no driving frames. Connect a driving video with at least one frame.")
    check_person(person)
    if empty_frames not in EMPTY_FRAMES:
        raise InputError(f"Unknown empty-frame policy '{empty_frames}'; pick one of {', '.join(EMPTY_FRAMES)}.")
    total = len(frames) + 1
    (ref_image,) = detector([reference])
    ref, _ = _detected(ref_image)
    ref_person, note = choose_reference(ref, person, person_index)
    if ref_person is None:
        raise InputError("No person found in the reference image. Use a reference that shows one person "
                         "clearly (whole body if possible), or supply the reference pose as POSE_KEYPOINT.")
    if progress:
        progress(1, total)

    detected: list[Detected] = []
    official: list[PoseFrame] = []  # every person of every frame, for the official fit
    frame_hw = (0, 0)
    if should_stop:
        should_stop()
    for batch in _batches(frames, max(1, batch_size)):
        frame_hw = batch[0].shape[:2]
        for image in detector(batch):
            d, frame = _detected(image)
            detected.append(d)
            official.append(frame)
        if progress:
            progress(1 + len(detected), total)
        if should_stop:
            should_stop()

    choices = choose_driving(detected, person, person_index)
    driving, missing = fill(choices, empty=empty_frames, whole_image=[d.people[0] for d in detected])
    height, width = reference.shape[:2]
    fit = Alignment.identity()
    if align:
        fit = _fit(ref_person, official, [d.fallback for d in detected], driving,
                   (height, width), frame_hw, fit_on_empty_frames)
    for k in ("body", "hands", "faces"):
        driving[k] = fit.apply(driving[k])
    if retarget:
        driving = retarget_limbs(ref_person, driving, height, width)
    driving = smooth_keypoints(driving, height, width, window=smooth_window, max_shift=smooth_max_shift)
    scene = None
    if person == "official":
        filled = set(missing) if empty_frames != "official" else set()
        scene = build_scene(ref.people, detected, driving, filled,
                            lambda p: {**p, **{f: fit.apply(p[f]) for f in ("body", "hands", "faces")}})
    poses = to_sequence(ref_person, driving, missing, height, width)
    poses.scene, poses.note = scene, note
    return poses
