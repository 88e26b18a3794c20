"""Image and video files for the command line (inside ComfyUI its loaders do this).

The reference image comes back as a ComfyUI IMAGE tensor (float 0..1, (1, H, W, 3)); the driving
video is read by ``video.video_frames``, one kept frame at a time. A missing or unreadable file
is an InputError naming the file.
"""
from __future__ import annotations

from collections.abc import Iterable
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


WRITE_CHUNK = 16  # frames converted to uint8 at a time: the float temporaries stay a few frames


def write_video(path: Path, images: torch.Tensor | Iterable[torch.Tensor], fps: float) -> Path:
    """Write IMAGE frames (float 0..1, (N, H, W, 3)) as H.264 mp4 at ``fps`` (fractional kept).

    ``images`` is one batch or an iterable of batches (``pipeline.animation_chunks``): each is
    converted to uint8 and encoded before the next is asked for, so the video is never held whole."""
    import av

    from .pipeline import to_uint8

    chunks = images.split(WRITE_CHUNK) if isinstance(images, torch.Tensor) else images
    with av.open(str(path), mode="w") as container:
        stream = None
        for chunk in chunks:
            frames = to_uint8(chunk)
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                # yuv420p needs even sizes
                stream.width, stream.height = frames.shape[2] // 2 * 2, frames.shape[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
            for frame in frames:
                packet = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:stream.height, :stream.width]),
                                                    format="rgb24")
                container.mux(stream.encode(packet))
        if stream is not None:
            container.mux(stream.encode())
    return path
