"""Which driving frames the animation uses, and at what frame rate it plays.

The official run (``mimicmotion/dwpose/preprocess.py`` ``get_video_pose``) keeps the frames
``range(0, len(video), stride)`` with ``stride = sample_stride * max(1, int(fps / 24))`` and
``sample_stride: 2`` from ``configs/test.yaml``: a 30 fps clip keeps every 2nd frame, a 60 fps
clip every 4th. The official run has no way to skip or cap frames; ``skip_first_frames`` and
``max_frames`` are ours, for trying a long clip cheaply. Order: the first ``skip_first_frames``
frames are dropped, the stride runs from the next frame, then at most ``max_frames`` of the
kept frames are used (0 = all). With both at 0 the kept frames are exactly the official ones.

The animation plays at ``source fps / stride`` (30 fps -> 15 fps), so it lasts as long as the
clip. The official script instead always writes at ``fps: 15`` from test.yaml whatever the
source (``OFFICIAL_OUTPUT_FPS``); the two agree for 30 and 60 fps sources.

One rule for video frames and POSE_KEYPOINT frame lists alike (``take``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import InputError

SAMPLE_STRIDE = 2  # configs/test.yaml sample_stride
OFFICIAL_OUTPUT_FPS = 15.0  # configs/test.yaml fps, what the official script writes
FPS_PER_STEP = 24  # preprocess.py: the stride grows by one sample_stride per full 24 fps

T = TypeVar("T")


@dataclass(frozen=True)
class FrameSampling:
    """User settings; the defaults are the official run's."""

    sample_stride: int = SAMPLE_STRIDE
    max_frames: int = 0  # 0 = all kept frames
    skip_first_frames: int = 0

    def __post_init__(self) -> None:
        if self.sample_stride < 1 or self.max_frames < 0 or self.skip_first_frames < 0:
            raise InputError(f"Frame sampling needs sample_stride >= 1, max_frames >= 0 (0 = all) and "
                             f"skip_first_frames >= 0; got {self.sample_stride}, {self.max_frames}, "
                             f"{self.skip_first_frames}.")


@dataclass(frozen=True)
class SampledFrames:
    """The kept source frame indices, the stride used and the frame rate they play at."""

    indices: tuple[int, ...]
    stride: int
    fps: float


def effective_stride(fps: float, sample_stride: int = SAMPLE_STRIDE) -> int:
    """The official stride: ``sample_stride * max(1, int(fps / 24))``."""
    if not fps > 0:
        raise InputError(f"The driving video's frame rate must be positive, got {fps}. "
                         "Connect the fps output of the video loader (e.g. GetVideoComponents).")
    return sample_stride * max(1, int(float(fps) / FPS_PER_STEP))


def sample_frames(num_frames: int, fps: float, sampling: FrameSampling = FrameSampling()) -> SampledFrames:
    """Indices of the frames to keep out of ``num_frames`` source frames at ``fps``."""
    stride = effective_stride(fps, sampling.sample_stride)
    indices = range(sampling.skip_first_frames, num_frames, stride)
    if sampling.max_frames:
        indices = indices[:sampling.max_frames]
    if len(indices) == 0:
        raise InputError(f"No driving frame left: the video has {num_frames} frame(s) and "
                         f"skip_first_frames is {sampling.skip_first_frames}. Lower skip_first_frames or "
                         "use a longer video.")
    return SampledFrames(tuple(indices), stride, float(fps) / stride)


def take(items: Sequence[T], fps: float, sampling: FrameSampling = FrameSampling()) -> tuple[list[T], SampledFrames]:
    """The kept items of a frame sequence (video frames, POSE_KEYPOINT dicts) and how they were chosen."""
    sampled = sample_frames(len(items), fps, sampling)
    return [items[i] for i in sampled.indices], sampled
