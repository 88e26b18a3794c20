"""Image and video files for the command line (inside ComfyUI its loaders do this).

The reference image comes back as a ComfyUI IMAGE tensor (float 0..1, (1, H, W, 3)); the driving
video is read by ``video.video_frames``, one kept frame at a time. A missing or unreadable file
is an InputError naming the file.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import InputError


def existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} '{path}' does not exist (or is not a file). Check the path.")
    return path


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a (1, H, W, 3) RGB IMAGE (alpha dropped, like the official pil_loader)."""
    from PIL import Image, UnidentifiedImageError

    path = existing_file(path, "reference image")
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"Cannot read the reference image '{path}' ({exc}). Use a PNG or JPEG file.") from None
    return torch.from_numpy(rgb.copy()).float()[None] / 255.0


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
