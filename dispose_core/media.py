"""Image and video files for the command line (inside ComfyUI its loaders do this).

Images come back as ComfyUI IMAGE tensors (float 0..1, (1, H, W, 3)); a video's kept frames as
(N, H, W, 3) plus the frame rate. Only the frames that the sampling rule keeps are decoded into
memory, so a long clip costs no more than its kept frames. A missing, unreadable or empty file
is an InputError naming the file.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .frames import FrameSampling, sample_frames


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} '{path}' does not exist (or is not a file). Check the path.")
    return path


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a (1, H, W, 3) RGB IMAGE (alpha dropped, like the official pil_loader)."""
    from PIL import Image, UnidentifiedImageError

    path = _existing(path, "reference image")
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"Cannot read the reference image '{path}' ({exc}). Use a PNG or JPEG file.") from None
    return torch.from_numpy(rgb.copy()).float()[None] / 255.0


def read_video(path: str | Path, sampling: FrameSampling = FrameSampling()) -> tuple[torch.Tensor, float, float]:
    """The kept driving frames (N, H, W, 3), their playback fps and the source fps."""
    import av

    path = _existing(path, "driving video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"The driving video '{path}' has no frames (no video stream in the file). "
                                 "Use a video that shows the motion.")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise InputError(f"'{path}' does not say its frame rate. Re-encode it, e.g. with ffmpeg -r 30.")
            count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            if count == 0:
                raise InputError(f"The driving video '{path}' has no frames. Use a video that shows the motion.")
            container.seek(0)
            sampled = sample_frames(count, float(rate), sampling)
            wanted, frames = set(sampled.indices), []
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if index >= sampled.indices[-1]:
                    break
    except av.error.FFmpegError as exc:
        raise InputError(f"Cannot read the driving video '{path}' ({exc}). Use an mp4/mov/webm file.") from None
    if not frames:
        raise InputError(f"The driving video '{path}' has no decodable frames. Re-encode it.")
    return torch.from_numpy(np.stack(frames)).float() / 255.0, sampled.fps, float(rate)


def write_video(path: Path, images: torch.Tensor, fps: float) -> Path:
    """Write an IMAGE batch (float 0..1, (N, H, W, 3)) as H.264 mp4 at ``fps`` (fractional kept)."""
    import av

    from .pipeline import to_uint8

    frames = to_uint8(images)
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p needs even sizes
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            packet = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            container.mux(stream.encode(packet))
        container.mux(stream.encode())
    return path
