"""The driving frames the official sampling keeps, produced one at a time as uint8 RGB.

A driving clip is 10-60 s of video; decoding all of it into one float32 batch (what core
``GetVideoComponents`` does) costs 11 MB per 720p frame and 25 MB per 1080p frame before a
single frame is used. Here the kept frames (``frames.py``) are converted, one at a time, to
(H, W, 3) uint8 at the source size, the form the pose detector reads, and handed on without
being stored: DWPose Extract reads them a batch at a time, so the whole clip never exists in
memory. The frames are not resized to the generation canvas first: the detector resizes them to
its own inputs anyway (640x640, 288x384 crops) and normalises keypoints by the frame size, so a
resize would only move the poses away from the official run's, which detects on the source
frames; one batch of 8 source frames is 22 MB at 720p, 50 MB at 1080p.

``video_frames`` reads a file (the CLI's path, and core ``VIDEO`` through its stream source:
a path or a file-like object); ``image_frames`` takes an IMAGE batch some other loader made.
Frames that are not kept are decoded (a codec must decode them to reach the next one) but never
converted, and decoding stops after the last kept frame.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .errors import InputError
from .frames import FrameSampling, SampledFrames, sample_frames

VideoSource = str | Path | BinaryIO


@dataclass(frozen=True)
class KeptFrames:
    """The kept driving frames: ``len()`` of them, read by iterating (each pass decodes anew)."""

    sampled: SampledFrames
    source_frames: int
    source_fps: float
    produce: Callable[[], Iterator[np.ndarray]]

    @property
    def fps(self) -> float:
        """The rate the kept frames play at."""
        return self.sampled.fps

    def __len__(self) -> int:
        return len(self.sampled.indices)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.produce()


def image_frames(images: torch.Tensor, fps: float, sampling: FrameSampling = FrameSampling()) -> KeptFrames:
    """The kept frames of an IMAGE batch (float 0..1, (N, H, W, 3)), each converted to uint8 when read."""
    from .pipeline import to_uint8

    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        raise InputError(f"The driving video has no frames (got shape {tuple(images.shape)}). "
                         "Check the video file and the loader's frame settings.")
    sampled = sample_frames(int(images.shape[0]), fps, sampling)
    return KeptFrames(sampled, int(images.shape[0]), float(fps),
                      lambda: (to_uint8(images[i]) for i in sampled.indices))


def rgb(frame) -> np.ndarray:
    """One decoded PyAV frame as (H, W, 3) uint8 RGB, turned upright by its rotation metadata as
    ComfyUI's own loader does (phone clips are stored sideways)."""
    image = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round(getattr(frame, "rotation", 0) or 0)) // 90
    return np.ascontiguousarray(np.rot90(image, k=quarter_turns)) if quarter_turns % 4 else image


@dataclass(frozen=True)
class _Window:
    """The part of the stream to read, in the stream's time base (``end`` 0 = to the end)."""

    start: int
    end: int

    def holds(self, pts: int | None) -> bool:
        return pts is None or (pts >= self.start and (not self.end or pts < self.end))


def _open(source: VideoSource, name: str):
    import av

    if hasattr(source, "seek"):
        source.seek(0)
    try:
        container = av.open(source if hasattr(source, "read") else str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"Cannot read the driving video {name} ({exc}). Use an mp4/mov/webm file.") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"The driving video {name} has no frames (no video stream in the file). "
                         "Use a video that shows the motion.")
    return container


def _count(container, stream, window: _Window) -> int:
    """Frames in the window: the header's count when the whole stream is read, else one pass over
    the packets (demuxing only, nothing decoded)."""
    if stream.frames and not window.start and not window.end:
        return int(stream.frames)
    return sum(1 for packet in container.demux(stream) if packet.size and window.holds(packet.pts))


def decoded(source: VideoSource, window: _Window, name: str) -> Iterator:
    """Every decoded frame of the window, in order (the not-kept ones too: a codec needs them)."""
    with _open(source, name) as container:
        stream = container.streams.video[0]
        if window.start:
            container.seek(window.start, stream=stream)
        for frame in container.decode(stream):
            if frame.pts is not None and frame.pts < window.start:
                continue
            if not window.holds(frame.pts):
                return
            yield frame


def _kept(source: VideoSource, window: _Window, wanted: tuple[int, ...], name: str) -> Iterator[np.ndarray]:
    import av

    keep, index = set(wanted), -1
    try:
        for index, frame in enumerate(decoded(source, window, name)):
            if index in keep:
                yield rgb(frame)
            if index >= wanted[-1]:
                return
    except av.error.FFmpegError as exc:
        raise InputError(f"Cannot decode the driving video {name} ({exc}). Re-encode it, e.g. with ffmpeg.") from None
    if index < wanted[0]:
        raise InputError(f"The driving video {name} has no decodable frame to keep. Re-encode it, e.g. with ffmpeg.")


def video_frames(source: VideoSource, sampling: FrameSampling = FrameSampling(), *, start_time: float = 0.0,
                 duration: float = 0.0, name: str = "") -> KeptFrames:
    """The kept frames of a video file or file-like object, decoded when read.

    ``start_time``/``duration`` (seconds, duration 0 = to the end) restrict it to a window, as a
    trimmed core VIDEO does; frame 0 of the sampling is the window's first frame. ``name`` names
    the video in messages. The file is opened here once to count frames and read the frame rate
    (a missing stream or rate, or no frame left, is an InputError now, not during the detection).
    """
    import av

    name = name or (f"'{source}'" if isinstance(source, (str, Path)) else "(VIDEO input)")
    try:
        with _open(source, name) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise InputError(f"The driving video {name} does not say its frame rate. Re-encode it, "
                                 "e.g. with ffmpeg -r 30.")
            base = stream.time_base
            window = _Window(int(start_time / base), int((start_time + duration) / base) if duration else 0)
            count = _count(container, stream, window)
    except av.error.FFmpegError as exc:
        raise InputError(f"Cannot read the driving video {name} ({exc}). Use an mp4/mov/webm file.") from None
    if count == 0:
        raise InputError(f"The driving video {name} has no frames. Use a video that shows the motion.")
    sampled = sample_frames(count, float(rate), sampling)
    return KeptFrames(sampled, count, float(rate), lambda: _kept(source, window, sampled.indices, name))
