"""Generation-canvas size and the reference image's resize/crop onto it.

MimicMotion/DisPose generate at a 9:16 (or 16:9, or square) canvas whose short side is the
``resolution``; the long side is rounded down to a multiple of 64. The reference image is
cover-resized (bilinear, no antialiasing, the smaller scale rounded up) and center-cropped, as
the official ``inference_ctrl.preprocess`` does with torchvision; we do the same with
``F.interpolate`` so every node that takes the reference IMAGE sees identical pixels.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .limits import check_resolution

ASPECT_RATIO = 9 / 16


def target_size(height: int, width: int, resolution: int = 576) -> tuple[int, int]:
    """Canvas (H, W) for an image of ``height`` x ``width`` at ``resolution`` (short side)."""
    if height <= 0 or width <= 0:
        raise InputError(f"Image size {height}x{width} is empty; connect a non-empty IMAGE.")
    if resolution < 64:
        raise InputError(f"Resolution {resolution} is too small; use at least 64 (576 is the trained size).")
    check_resolution(resolution)
    long_side = int(resolution / ASPECT_RATIO // 64) * 64
    if height > width:
        return long_side, resolution
    if height == width:
        return resolution, resolution
    return resolution, long_side


def preview_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) of a preview whose longer side is at most ``long_side`` (aspect kept, at least 1 px)."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def cover_size(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int]:
    """Size (H, W) the image is resized to before the center crop: covers the target, keeps aspect."""
    ratio = float(height) / float(width)
    if ratio < target_h / target_w:
        return target_h, math.ceil(target_h / ratio)
    return math.ceil(target_w * ratio), target_w


def _crop_offset(size: int, crop: int) -> int:
    # torchvision center_crop: int(round((size - crop) / 2)), Python round (half to even)
    return int(round((size - crop) / 2.0))


def cover_crop(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """(resized H, resized W, crop top, crop left) of ``fit_to_canvas`` for an image of this size.

    Lets keypoints found on the original image follow the image onto the canvas:
    ``x_canvas = x_original * resized_W / width - left`` (same for y).
    """
    rh, rw = cover_size(height, width, target_h, target_w)
    return rh, rw, _crop_offset(rh, target_h), _crop_offset(rw, target_w)


def fit_to_canvas(image: np.ndarray | torch.Tensor, height: int, width: int) -> np.ndarray | torch.Tensor:
    """Cover-resize and center-crop one image (H, W, 3) to ``height`` x ``width``.

    uint8 numpy in -> uint8 numpy out (bilinear in float32 then rounded, like torchvision on a
    uint8 tensor); float tensor/array in -> same type and dtype out, no rounding.
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"Expected one (H, W, 3) image, got shape {tuple(image.shape)}.")
    is_numpy = isinstance(image, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(image)) if is_numpy else image
    dtype = tensor.dtype
    h, w = int(tensor.shape[0]), int(tensor.shape[1])
    rh, rw, top, left = cover_crop(h, w, height, width)
    x = tensor.permute(2, 0, 1)[None]
    x = x.float() if not x.is_floating_point() else x
    if (rh, rw) != (h, w):
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=False)
    x = x[0, :, top:top + height, left:left + width].permute(1, 2, 0)
    if not dtype.is_floating_point:
        x = x.round().clamp(0, 255)
    x = x.to(dtype).contiguous()
    return x.numpy() if is_numpy else x
