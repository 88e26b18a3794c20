"""The parts of the SVD spatio-temporal UNet's encoder that the UNet and the ControlNet share.

Both models hold modules with the same names (``conv_in``, ``time_proj``, ``time_embedding``,
``add_time_proj``, ``add_embedding``, ``down_blocks``, ``mid_block``), so the time embedding, the
down path and the input checks are written once here as a mixin.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError


def skip_counts(down_blocks: nn.ModuleList) -> list[int]:
    """Number of skip tensors collected after each down block (conv_in's output counts first)."""
    counts, total = [], 1
    for block in down_blocks:
        total += len(block.resnets) + (len(block.downsamplers) if block.downsamplers is not None else 0)
        counts.append(total)
    return counts


def down_scale(down_blocks: nn.ModuleList) -> int:
    """Total spatial reduction of the down path (8 for SVD: three downsamplers)."""
    return 2 ** sum(block.downsamplers is not None for block in down_blocks)


class SVDEncoderMixin:
    """Time embedding, input checks, down and mid path of an SVD-style spatio-temporal encoder."""

    conv_in: nn.Conv2d
    time_proj: nn.Module
    time_embedding: nn.Module
    add_time_proj: nn.Module
    add_embedding: nn.Module
    down_blocks: nn.ModuleList
    mid_block: nn.Module

    @property
    def param_dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def check_inputs(
        self,
        sample: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        what: str,
    ) -> tuple[int, int]:
        """Validate shapes with messages a user can act on; return (batch, frames)."""
        if sample.ndim != 5 or sample.shape[2] != self.conv_in.in_channels:
            raise InputError(
                f"{what}: sample must be (B, F, {self.conv_in.in_channels}, h, w) = noisy latents ++ image "
                f"latents, got {tuple(sample.shape)}."
            )
        b, f, _, h, w = sample.shape
        scale = down_scale(self.down_blocks)
        if h % scale or w % scale:
            raise InputError(
                f"{what}: latent size {h}x{w} must be divisible by {scale} (pixel size a multiple of "
                f"{8 * scale}); resize the inputs."
            )
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != b:
            raise InputError(
                f"{what}: encoder_hidden_states must be (B={b}, tokens, dim), got {tuple(encoder_hidden_states.shape)}."
            )
        n_ids = self.add_embedding.linear_1.in_features // self.add_time_proj.num_channels
        if tuple(added_time_ids.shape) != (b, n_ids):
            raise InputError(
                f"{what}: added_time_ids must be (B={b}, {n_ids}) = [fps-1, motion_bucket_id, noise_aug], "
                f"got {tuple(added_time_ids.shape)}."
            )
        return b, f

    def embed_time(
        self, timestep: torch.Tensor | float, added_time_ids: torch.Tensor, batch: int, frames: int
    ) -> torch.Tensor:
        """Timestep + added-time-id embedding, one row per frame: (B*F, time_embed_dim)."""
        device = self.conv_in.weight.device
        t = torch.as_tensor(timestep, device=device)
        if not t.is_floating_point():
            t = t.to(torch.int64)
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(self.time_proj(t).to(self.param_dtype))
        ids = self.add_time_proj(added_time_ids.to(device).flatten()).reshape(batch, -1)
        emb = emb + self.add_embedding(ids.to(emb.dtype))
        return emb.repeat_interleave(frames, dim=0)

    def run_down(
        self,
        hidden: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor,
        indicator: torch.Tensor,
        after_block: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Down blocks; returns the final hidden state and every skip (conv_in output first).

        ``after_block(i, hidden)`` may change the running state after block i; the skips of block i
        are taken before that (the ControlNet's point features enter this way).
        """
        skips = [hidden]
        for i, block in enumerate(self.down_blocks):
            kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            hidden, block_skips = block(hidden_states=hidden, temb=emb, image_only_indicator=indicator, **kwargs)
            skips.extend(block_skips)
            if after_block is not None:
                hidden = after_block(i, hidden)
        return hidden, skips

    def run_mid(
        self, hidden: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, indicator: torch.Tensor
    ) -> torch.Tensor:
        return self.mid_block(
            hidden_states=hidden, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator
        )


def frame_context(encoder_hidden_states: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, T, C) image embedding -> (B*F, T, C), one copy per frame as the attention layers expect."""
    return encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0)
