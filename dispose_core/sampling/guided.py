"""The CLI's entrance to the video model: a k-diffusion denoiser with SVD's EDM maps and per-frame CFG.

What ComfyUI's ``BaseModel`` (EDM v-prediction, sigma_data 1), ``CFGGuider`` (both halves batched,
[uncond, cond]) and ``VideoLinearCFGGuidance`` (the guidance ramp over all frames, the reference
included) compute around the same ``MimicMotionVideoModel``, written host-independently so the
CLI and the library tests need no ComfyUI. Guidance is applied to x0; the official code applies it
to v, the same thing since x0 is affine in v with per-step coefficients (fusion is linear too).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .schedule import denoised_from_v, scale_input, timestep
from .pose_frames import PoseFrames
from .video_model import MimicMotionVideoModel


@dataclass
class VideoConditions:
    """Step-invariant inputs of both halves, one row per half in the order [uncond, cond] (or [cond]
    without CFG): the uncond half has a zero image embedding and reference latent and no poses."""

    context: torch.Tensor  # (N,1,D) image embedding
    latent: torch.Tensor  # (N,4,h,w) reference latent (unscaled)
    time_ids: torch.Tensor  # (N,3) [fps-1, motion bucket, noise_aug]
    pose_frames: list[PoseFrames | None]  # N entries: PoseNet's frames per half (run per tile)

    @property
    def halves(self) -> int:
        return int(self.context.shape[0])


@dataclass
class GuidedVideoModel:
    """``model(x (F,4,h,w), sigma (F,)) -> x0``: c_in, the reference latent concatenated, one call of the
    video model on the CFG batch, x0 from v, then u + g_f (c - u) per frame with ``guidance`` (F,)."""

    model: MimicMotionVideoModel
    conditions: VideoConditions
    guidance: torch.Tensor | None
    options: dict = field(default_factory=dict)  # transformer options (tiles, control run, hooks, sigmas)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c, frames = self.conditions, x.shape[0]
        s = sigma[0]
        scaled = scale_input(x, s)
        halves = c.halves
        xc = torch.cat([scaled.repeat(halves, 1, 1, 1),
                        c.latent.to(x).repeat_interleave(frames, dim=0)], dim=1)
        options = dict(self.options, cond_or_uncond=[1, 0][-halves:], sigmas=sigma.repeat(halves))
        v = self.model(xc, timestep(s).expand(halves * frames), c.context.repeat_interleave(frames, dim=0),
                       transformer_options=options, time_ids=c.time_ids.repeat_interleave(frames, dim=0),
                       pose_frames=c.pose_frames, num_video_frames=frames)
        x0 = denoised_from_v(v.float(), x.repeat(halves, 1, 1, 1), s).reshape(halves, frames, *x.shape[1:])
        if self.guidance is None:
            return x0[-1]
        g = self.guidance.to(x).view(-1, 1, 1, 1)
        return x0[0] + g * (x0[1] - x0[0])
