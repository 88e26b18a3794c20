"""Write per-point values into pixels the way the official code does (later point index wins)."""
from __future__ import annotations

import torch


def last_writer(rows: torch.Tensor, cols: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mask ``(..., K)`` of the points whose write survives.

    The official code writes points in index order, so when several valid points of one frame
    land on the same pixel the highest index wins; the others are dropped here so that the writes
    can be done in any order (or summed).
    """
    same = (rows[..., :, None] == rows[..., None, :]) & (cols[..., :, None] == cols[..., None, :])
    k = rows.shape[-1]
    later = torch.ones(k, k, dtype=torch.bool, device=rows.device).triu(diagonal=1)
    overwritten = (same & later & valid[..., None, :]).any(dim=-1)
    return valid & ~overwritten


def splat(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    valid: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense ``(N, C, height, width)`` map and ``(N, height, width)`` uint8 mask from point writes.

    ``rows``/``cols``/``valid``: ``(N, K)``; ``values``: ``(N, K, C)``. Only surviving writes
    (``last_writer``) land, so the result does not depend on scatter order.
    """
    n, k, c = values.shape
    keep = last_writer(rows, cols, valid)
    frame = torch.arange(n, device=rows.device)[:, None].expand(n, k)[keep]
    pixel = (rows * width + cols)[keep]
    dense = torch.zeros(n, c, height * width, dtype=values.dtype, device=values.device)
    dense[frame, :, pixel] = values[keep]
    mask = torch.zeros(n, height * width, dtype=torch.uint8, device=values.device)
    mask[frame, pixel] = 1
    return dense.view(n, c, height, width), mask.view(n, height, width)
