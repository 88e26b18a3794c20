"""The official 2-D Gaussian blur (``bivariate_Gaussian`` + ``cv2.filter2D``) as two matrices.

The official kernel is the normalised isotropic 2-D Gaussian, which is exactly the outer product
of the normalised 1-D Gaussian with itself. ``cv2.filter2D`` with its default border
(BORDER_REFLECT_101) is therefore ``B_h @ X @ B_w.T``, where ``B_n`` is an (n, n) matrix that folds
the 1-D kernel back into the image by reflect-101. When the kernel radius exceeds the image size,
OpenCV keeps reflecting (period ``2 (n - 1)``; a 1-pixel axis maps everything onto that pixel), and
so does this matrix.
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError


def check_kernel(kernel_size: int, sigma: float) -> None:
    """Raise InputError unless the kernel is odd and >= 1 and sigma is finite and > 0."""
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(
            f"Gaussian kernel size {kernel_size} is invalid: use an odd whole number >= 1 "
            "(the official value is 199)."
        )
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"Gaussian sigma {sigma} is invalid: use a positive number (the official value is 20).")


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian (float64) whose outer square is the official 2-D kernel."""
    check_kernel(kernel_size, sigma)
    radius = kernel_size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def reflect101(index: torch.Tensor, n: int) -> torch.Tensor:
    """OpenCV's BORDER_REFLECT_101 index mapping, applied repeatedly for far-out indices."""
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    p = torch.remainder(index, period)
    return torch.where(p >= n, period - p, p)


def blur_matrix(
    n: int,
    kernel_size: int,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(n, n) matrix ``B`` with ``B @ x`` = 1-D Gaussian filter of ``x`` with reflect-101 borders."""
    g = gaussian_kernel_1d(kernel_size, sigma)
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1)
    rows = torch.arange(n)[:, None].expand(n, kernel_size)
    cols = reflect101(rows + offsets[None, :], n)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows.reshape(-1), cols.reshape(-1)), g.repeat(n), accumulate=True)
    return matrix.to(dtype=dtype, device=device)
