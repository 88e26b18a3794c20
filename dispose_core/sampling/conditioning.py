"""Step-invariant conditioning of SVD/MimicMotion: CLIP embedding, VAE latent, time ids, noise.

Everything here runs once per video. The numerics follow the official pipelines (CLIP input
resized with SVD's antialiased resize, VAE posterior mode without the scaling factor, time ids
[fps-1, motion bucket, noise augmentation]) so that trained weights see what they were trained on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CLIP_SIZE = 224


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size`` centred on the middle tap."""
    x = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-x.pow(2) / (2 * torch.tensor(sigma, dtype=dtype) ** 2))
    return g / g.sum()


def _blur_1d(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise 1-D filter along H (dim=-2) or W (dim=-1) with reflect padding."""
    c = x.shape[1]
    pad = kernel.numel() // 2
    if dim == -1:
        x = F.pad(x, (pad, pad, 0, 0), mode="reflect")
        weight = kernel.view(1, 1, 1, -1)
    else:
        x = F.pad(x, (0, 0, pad, pad), mode="reflect")
        weight = kernel.view(1, 1, -1, 1)
    return F.conv2d(x, weight.to(x).expand(c, 1, -1, -1), groups=c)


def antialiased_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """SVD's CLIP-input resize: Gaussian blur (sigma = max((scale-1)/2, 0.001) per axis, kernel
    2*2*sigma rounded up to odd, at least 3), then bicubic with align_corners=True.

    The trained image encoder saw images resized this way, so it is kept exactly (own code: no
    torchvision/kornia).
    """
    h, w = x.shape[-2:]
    sigmas = (max((h / size[0] - 1.0) / 2.0, 0.001), max((w / size[1] - 1.0) / 2.0, 0.001))
    sizes = [max(int(4.0 * s), 3) for s in sigmas]
    sizes = [k + 1 if k % 2 == 0 else k for k in sizes]
    x = _blur_1d(x, _gaussian_kernel(sizes[1], sigmas[1], x.dtype), dim=-1)
    x = _blur_1d(x, _gaussian_kernel(sizes[0], sigmas[0], x.dtype), dim=-2)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


def clip_pixels(image01: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                size: int | tuple[int, int] = CLIP_SIZE) -> torch.Tensor:
    """(1,3,H,W) image in [0,1] -> normalised (1,3,h,w) CLIP input, ``size`` = h = w or (h, w).

    The official pipeline maps to [-1,1] before resizing and back after; the blur is linear, but
    bicubic overshoot is not clamped either way, so the round trip is kept for exactness.
    """
    x = antialiased_resize(image01 * 2.0 - 1.0, (size, size) if isinstance(size, int) else tuple(size))
    x = (x + 1.0) / 2.0
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class NoiseDraws:
    """The generator's draws in the official order (the per-step scheduler draws are skipped)."""

    noise_aug: torch.Tensor  # (1,3,H,W) float32: 1st draw, always taken
    init: torch.Tensor  # (1,tile_size,4,h,w) float32: 2nd draw, unscaled


def draw_noise(generator: torch.Generator, height: int, width: int, tile_size: int,
               latent_channels: int = 4, scale: int = 8) -> NoiseDraws:
    """Draw exactly what the official pipeline draws first, in the same order and shapes.

    The official Euler scheduler then draws one latent-shaped tensor per step and multiplies it by
    zero (s_churn = 0); those draws come after every draw that matters, so skipping them changes
    nothing in the output. Draws are float32 on the generator's device, so a CPU generator gives
    the same video on every device.
    """
    device = generator.device
    noise_aug = torch.randn((1, 3, height, width), generator=generator, device=device)
    init = torch.randn((1, tile_size, latent_channels, height // scale, width // scale),
                       generator=generator, device=device)
    return NoiseDraws(noise_aug, init)


def periodic_initial_latents(init: torch.Tensor, num_frames: int, sigma: torch.Tensor) -> torch.Tensor:
    """(1,F,4,h,w) initial latents: frame f takes draw f mod tile_size, times init_noise_sigma."""
    period = init.shape[1]
    frame_draw = torch.arange(num_frames) % period
    return (init * sigma.to(init))[:, frame_draw.to(init.device)]


def added_time_ids(fps: int, motion_bucket_id: int, noise_aug: float) -> torch.Tensor:
    """(1,3) SVD micro-conditioning; SVD was trained on fps-1, hence the shift."""
    return torch.tensor([[fps - 1, motion_bucket_id, noise_aug]], dtype=torch.float32)


def frame_guidance(min_guidance: float, max_guidance: float, num_frames: int) -> torch.Tensor:
    """(F,) guidance scale rising linearly from the first frame to the last (official)."""
    return torch.linspace(min_guidance, max_guidance, num_frames)


@torch.no_grad()
def image_embedding(image_encoder: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(1,1,D) CLIP image embedding (the UNet's cross-attention context)."""
    return image_encoder(pixel_values=pixels).image_embeds.unsqueeze(1)


@torch.no_grad()
def reference_latent(vae: torch.nn.Module, image_pm1: torch.Tensor) -> torch.Tensor:
    """(1,4,h,w) VAE posterior mode of the (noise-augmented) reference in [-1,1].

    Not multiplied by the scaling factor: SVD concatenates it to the noisy latents unscaled.
    """
    return vae.encode(image_pm1).latent_dist.mode()
