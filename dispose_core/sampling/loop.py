"""The denoising loop: Euler steps over tiles with weighted fusion and per-frame guidance.

Model-agnostic: the loop hands each tile's scaled latents to ``predict`` and only does the
arithmetic the official pipeline does around it, so it can be checked against the recorded
model outputs of the golden case without running a model.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import EulerSchedule

# predict(step, tile_number, frame_indices, scaled latents (1,T,4,h,w)) -> v-prediction (B,T,4,h,w)
Predict = Callable[[int, int, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def denoise(latents: torch.Tensor, schedule: EulerSchedule, tiles: torch.Tensor,
            weights: torch.Tensor, guidance: torch.Tensor | None, predict: Predict,
            before_call: Callable[[], None] | None = None,
            after_call: Callable[[], None] | None = None) -> torch.Tensor:
    """Run every Euler step on (1,F,4,h,w) float32 ``latents``; return the final latents.

    Per step, each tile's prediction (B=2 rows [uncond, cond] with CFG, B=1 without) is added
    into its frames with the triangular ``weights`` and the sum is divided by each frame's total
    weight. With ``guidance`` (F,) the two rows are combined as u + g_f (c - u). Accumulation and
    the Euler update stay in float32 whatever the model dtype: the first step cancels terms of
    size sigma_max = 700, which half precision would not survive.
    ``tiles``, ``weights`` and ``guidance`` must already be on the latents' device.
    """
    num_frames = latents.shape[1]
    counts = torch.zeros(num_frames, device=latents.device)
    for idx in tiles:
        counts[idx] += weights
    norm = counts.view(1, -1, 1, 1, 1)
    frame_weight = weights.view(1, -1, 1, 1, 1)
    g = None if guidance is None else guidance.view(1, -1, 1, 1, 1)
    for step in range(schedule.num_steps):
        scaled = schedule.scale_model_input(latents, step)
        fused = None
        for number, idx in enumerate(tiles):
            if before_call is not None:
                before_call()
            out = predict(step, number, idx, scaled[:, idx]).float()
            if fused is None:
                fused = torch.zeros((out.shape[0], *latents.shape[1:]), device=latents.device)
            fused[:, idx] += out * frame_weight
            if after_call is not None:
                after_call()
        fused = fused / norm
        v = fused if g is None else fused[:1] + g * (fused[1:] - fused[:1])
        latents = schedule.step(v, step, latents)
    return latents
