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
from functools import lru_cache

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
    check_kernel(kernel_size, sigma)
    return _blur_matrix(int(n), int(kernel_size), float(sigma), dtype).to(device=device, copy=True)


def blur_columns(n: int, kernel_size: int, sigma: float, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Columns ``B[:, index]`` (shape ``(n, *index.shape)``, CPU) without copying the whole matrix."""
    check_kernel(kernel_size, sigma)
    return _blur_matrix(int(n), int(kernel_size), float(sigma), dtype)[:, index.cpu()]


@lru_cache(maxsize=8)
def _blur_matrix(n: int, kernel_size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    """CPU matrix, cached (read-only): it depends only on the canvas size and the kernel.

    Row i of a zero-padded (n, n + 2r) matrix holds the kernel at columns i..i+2r (one strided
    copy); the 2r padding columns (image indices -r..-1 and n..n+r-1) are then folded back onto
    their reflect-101 images.
    """
    g = gaussian_kernel_1d(kernel_size, sigma).to(dtype)
    radius = kernel_size // 2
    width = n + 2 * radius
    padded = torch.zeros(n, width, dtype=dtype)
    padded.as_strided((n, kernel_size), (width + 1, 1)).copy_(g.expand(n, kernel_size))
    matrix = padded[:, radius:radius + n].clone()
    outside = torch.cat([torch.arange(radius), torch.arange(radius + n, width)])
    matrix.index_add_(1, reflect101(outside - radius, n), padded[:, outside])
    return matrix
