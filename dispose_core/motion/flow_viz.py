"""Flow fields as colour images (ComfyUI ``IMAGE``), so every motion stage can be previewed.

Direction picks the hue on the usual optical-flow colour wheel (red -> yellow -> green -> cyan ->
blue -> magenta, with the segment lengths of the Middlebury wheel so that perceptually similar
hues get similar arc lengths), magnitude the saturation: zero motion is white. By default the
magnitude is normalised by the largest one in the whole batch, so an animation does not flicker.
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError

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


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """``flow`` (N, 2, H, W) -> (N, H, W, 3) in [0, 1]; NaN/inf motion is shown as none (white)."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise InputError(f"Flow has shape {tuple(flow.shape)}; expected (N, 2, H, W) with dx, dy channels.")
    flow = torch.nan_to_num(flow.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
    dx, dy = flow[:, 0], flow[:, 1]
    magnitude = torch.sqrt(dx * dx + dy * dy)
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) if magnitude.numel() else 0.0
    radius = magnitude / max(float(max_magnitude), 1e-12)

    wheel = color_wheel().to(flow.device)
    n = wheel.shape[0]
    position = (torch.atan2(-dy, -dx) / math.pi + 1) / 2 * (n - 1)  # 0 .. n-1 around the wheel
    k0 = position.floor().long().clamp(0, n - 1)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    hue = wheel[k0] * (1 - frac) + wheel[k1] * frac  # (N, H, W, 3)

    r = radius[..., None]
    inside = 1 - r.clamp(max=1) * (1 - hue)  # white at rest, full colour at the max magnitude
    return torch.where(r <= 1, inside, hue * 0.75).clamp(0, 1)
