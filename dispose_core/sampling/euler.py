"""The official sampler step as a k-diffusion sampler function: deterministic Euler on denoised x0.

MimicMotion runs diffusers' ``EulerDiscreteScheduler`` with s_churn 0: each step moves x along
(x - x0) / sigma from sigma_i to sigma_{i+1}. Written with k-diffusion's signature so one function
serves ComfyUI (``comfy.samplers.KSAMPLER`` and the MimicMotion Sampler node) and the CLI
(``guided.GuidedVideoModel``); ``x`` arrives already scaled to sigmas[0] (the caller's noise scaling).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# model(x, sigma (batch,), **extra_args) -> denoised x0, k-diffusion's denoiser convention
Denoiser = Callable[..., torch.Tensor]


@torch.no_grad()
def sample_euler(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None, disable: bool | None = None) -> torch.Tensor:
    """Run len(sigmas) - 1 Euler steps; ``callback`` gets k-diffusion's per-step dict (x, i, sigma,
    sigma_hat, denoised) after each model call. ``disable`` (a progress-bar switch) is accepted for
    the signature; there is no bar here."""
    extra_args = extra_args or {}
    ones = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = model(x, sigma * ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        x = x + (x - denoised) / sigma * (sigmas[i + 1] - sigma)
    return x
