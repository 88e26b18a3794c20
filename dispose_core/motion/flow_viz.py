"""Flow fields as colour images (ComfyUI ``IMAGE``), so every motion stage can be previewed.

Direction picks the hue on the usual optical-flow colour wheel (red -> yellow -> green -> cyan ->
blue -> magenta, with the segment lengths of the Middlebury wheel so that perceptually similar
hues get similar arc lengths), magnitude the saturation: zero motion is white. By default the
magnitude is normalised by the largest one in the whole batch, so an animation does not flicker.
Frames are coloured a few at a time, mostly in place, so a long video's preview never holds more
than a handful of float32 canvas planes per frame of one chunk.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..image import preview_size

if TYPE_CHECKING:
    from ..types import FlowField

# (hue segment length, start colour, end colour): the six transitions of the wheel.
_SEGMENTS = (
    (15, (1, 0, 0), (1, 1, 0)),
    (6, (1, 1, 0), (0, 1, 0)),
    (4, (0, 1, 0), (0, 1, 1)),
    (11, (0, 1, 1), (0, 0, 1)),
    (13, (0, 0, 1), (1, 0, 1)),
    (6, (1, 0, 1), (1, 0, 0)),
)


def color_wheel() -> torch.Tensor:
    """(55, 3) float32 colours around the wheel, evenly spaced in angle."""
    parts = []
    for n, start, end in _SEGMENTS:
        t = torch.arange(n, dtype=torch.float32)[:, None] / n
        parts.append(torch.tensor(start, dtype=torch.float32) * (1 - t) + torch.tensor(end, dtype=torch.float32) * t)
    return torch.cat(parts)


PREVIEW_CHUNK = 4  # frames coloured at once: ~17 float32 canvas planes per frame exist only for these


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None, *,
                  chunk: int = PREVIEW_CHUNK) -> torch.Tensor:
    """``flow`` (N, 2, H, W) -> (N, H, W, 3) in [0, 1], ``chunk`` frames at a time; NaN/inf motion
    is shown as none (white)."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise InputError(f"Flow has shape {tuple(flow.shape)}; expected (N, 2, H, W) with dx, dy channels.")
    n, _, height, width = flow.shape
    return colour_frames(lambda start, stop: flow[start:stop], n, (height, width), max_magnitude,
                         chunk=chunk, device=flow.device)


def field_preview(field: FlowField, max_magnitude: float | None = None, *, long_side: int | None = None,
                  chunk: int | None = None) -> torch.Tensor:
    """Colour preview (F-1, h, w, 3) of a stored field, expanded ``chunk`` frames at a time
    (default ``PREVIEW_CHUNK``); ``long_side`` caps the preview size (see ``image.preview_size``)."""
    size = (field.height, field.width) if long_side is None else preview_size(field.height, field.width, long_side)
    return colour_frames(field.fields, field.num_frames - 1, size, max_magnitude,
                         chunk=PREVIEW_CHUNK if chunk is None else chunk)


def colour_frames(flows: Callable[[int, int], torch.Tensor], count: int, size: tuple[int, int],
                  max_magnitude: float | None = None, *, chunk: int = PREVIEW_CHUNK,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """(count, *size, 3) colours of the ``count`` flows that ``flows(start, stop)`` hands out.

    By default the magnitude is normalised by the largest one of all frames (a first pass over
    the chunks); colours made at the flows' own size are area-downscaled to ``size``.
    """
    if chunk < 1:
        raise InputError(f"Preview chunk {chunk} is invalid: use 1 or more frames.")
    spans = [(s, min(s + chunk, count)) for s in range(0, count, chunk)]
    if max_magnitude is None:
        max_magnitude = max((float(_magnitude(_finite(flows(s, e))).max()) for s, e in spans), default=0.0)
    wheel = color_wheel().to(device)
    out = torch.empty(count, *size, 3, dtype=torch.float32, device=device)
    for s, e in spans:
        colours = _colour(_finite(flows(s, e)), float(max_magnitude), wheel.to(device))
        if tuple(colours.shape[1:3]) != tuple(size):
            colours = F.interpolate(colours.permute(0, 3, 1, 2), size=size, mode="area").permute(0, 2, 3, 1)
        out[s:e] = colours
    return out


def _finite(flow: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(flow.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)


def _magnitude(flow: torch.Tensor) -> torch.Tensor:
    magnitude = flow[:, 0] * flow[:, 0]
    magnitude += flow[:, 1] * flow[:, 1]
    return magnitude.sqrt_()


def _colour(flow: torch.Tensor, max_magnitude: float, wheel: torch.Tensor) -> torch.Tensor:
    """(n, 2, H, W) finite flow -> (n, H, W, 3): the wheel colour, paler towards zero motion.

    Works plane by plane, in place where it can: a few float32 canvas planes per frame, not 20+.
    """
    dx, dy = flow[:, 0], flow[:, 1]
    n = wheel.shape[0]
    position = torch.atan2(-dy, -dx).div_(math.pi).add_(1).div_(2).mul_(n - 1)  # 0 .. n-1 around the wheel
    k0 = position.floor().clamp_(0, n - 1)
    frac = position.sub_(k0)  # position is not needed any more
    k0 = k0.long()
    k1 = (k0 + 1).remainder_(n)
    keep = 1 - frac
    radius = _magnitude(flow).div_(max(max_magnitude, 1e-12))
    within = radius <= 1
    pale = radius.clamp_(max=1)  # only read where ``within``: there it equals the radius
    out = torch.empty(*radius.shape, 3, dtype=torch.float32, device=flow.device)
    for c in range(3):
        hue = wheel[:, c][k0].mul_(keep)
        hue += wheel[:, c][k1].mul_(frac)  # the hue of the wheel between the two nearest colours
        inside = torch.rsub(hue, 1).mul_(pale).neg_().add_(1)  # white at rest, full colour at the max
        out[..., c] = torch.where(within, inside, hue.mul_(0.75)).clamp_(0, 1)
    return out
