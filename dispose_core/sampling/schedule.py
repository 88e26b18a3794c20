"""EDM Euler schedule of SVD-xt: Karras sigmas, v-prediction, deterministic Euler steps.

Equal to diffusers' ``EulerDiscreteScheduler`` with the SVD-xt scheduler config (v_prediction,
continuous timesteps, Karras sigmas 700 -> 0.002, s_churn 0), written out so the sampler controls
every float operation and never touches the random generator (diffusers draws one unused noise
tensor per step; see ``conditioning.draw_initial_noise``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 700.0
RHO = 7.0


@dataclass(frozen=True)
class EulerSchedule:
    """Per-step noise levels; ``sigmas`` has one more entry (the final 0) than ``timesteps``."""

    sigmas: torch.Tensor  # (steps+1,) float32, decreasing, last = 0
    timesteps: torch.Tensor  # (steps,) float32, 0.25 * ln(sigma) (the UNet's conditioning)

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.shape[0])

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        """Scale of the initial noise: sqrt(sigma_max^2 + 1) ("leading" spacing in diffusers)."""
        return (self.sigmas.max() ** 2 + 1) ** 0.5

    def to(self, device: torch.device | str) -> EulerSchedule:
        """The same schedule on ``device`` (moved once, before the loop)."""
        return EulerSchedule(self.sigmas.to(device), self.timesteps.to(device))

    def scale_model_input(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """EDM c_in: the UNet sees x / sqrt(sigma^2 + 1)."""
        sigma = self.sigmas[step]
        return x / ((sigma**2 + 1) ** 0.5)

    def step(self, v: torch.Tensor, step: int, x: torch.Tensor) -> torch.Tensor:
        """One Euler step from sigma_i to sigma_{i+1} given the v-prediction ``v`` (float32)."""
        sigma = self.sigmas[step]
        x0 = v * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
        derivative = (x - x0) / sigma
        return x + derivative * (self.sigmas[step + 1] - sigma)


def karras_schedule(num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                    rho: float = RHO) -> EulerSchedule:
    """Karras et al. (2022) sigmas, computed in float64 like diffusers, stored as float32."""
    ramp = np.linspace(0.0, 1.0, num_steps)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = torch.from_numpy((hi + ramp * (lo - hi)) ** rho).float()
    timesteps = 0.25 * sigmas.log()
    return EulerSchedule(torch.cat([sigmas, sigmas.new_zeros(1)]), timesteps)
