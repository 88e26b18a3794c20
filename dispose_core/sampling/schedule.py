"""SVD-xt's noise schedule and EDM v-prediction maps (diffusers' ``EulerDiscreteScheduler`` config:
v_prediction, continuous timesteps, Karras sigmas 700 -> 0.002, sigma_data 1).

These are the host-independent forms of what ComfyUI's ``ModelSamplingContinuousEDM`` with
``V_PREDICTION_EDM`` computes for its SVD model (``calculate_input``, ``timestep``,
``calculate_denoised``, ``noise_scaling``); the CLI entrance uses them, ComfyUI uses its own.
"""
from __future__ import annotations

import numpy as np
import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 700.0
RHO = 7.0


def karras_sigmas(num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> torch.Tensor:
    """(steps+1,) float32 Karras et al. (2022) sigmas with the final 0, computed in float64 like
    diffusers (ComfyUI's ``karras`` scheduler computes in float32; see the README for the difference)."""
    ramp = np.linspace(0.0, 1.0, num_steps)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = torch.from_numpy((hi + ramp * (lo - hi)) ** rho).float()
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def timestep(sigma: torch.Tensor) -> torch.Tensor:
    """The UNet's noise conditioning: 0.25 ln sigma."""
    return 0.25 * sigma.log()


def init_noise_sigma(sigma_max: torch.Tensor | float) -> torch.Tensor:
    """Scale of unit noise at the first step: sqrt(sigma_max^2 + 1) (diffusers' "leading" spacing,
    ComfyUI's EDM ``noise_scaling`` at full denoise)."""
    return (torch.as_tensor(sigma_max, dtype=torch.float32) ** 2 + 1) ** 0.5


def scale_input(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """EDM c_in: the UNet sees x / sqrt(sigma^2 + 1)."""
    return x / ((sigma**2 + 1) ** 0.5)


def denoised_from_v(v: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0 from the v-prediction: x / (sigma^2 + 1) - v sigma / sqrt(sigma^2 + 1)."""
    return v * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
