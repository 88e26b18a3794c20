"""The parts of the SVD spatio-temporal UNet's encoder that the UNet and the ControlNet share.

Both models hold modules with the same names (``conv_in``, ``time_proj``, ``time_embedding``,
``add_time_proj``, ``add_embedding``, ``down_blocks``, ``mid_block``), so the time embedding, the
down path and the input checks are written once here as a mixin.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .cast_layers import compute_placement


def block_skip_count(block: nn.Module) -> int:
    """Skip tensors one down block emits: one per resnet layer, one per downsampler."""
    return len(block.resnets) + (len(block.downsamplers) if block.downsamplers is not None else 0)


def skip_counts(down_blocks: nn.ModuleList) -> list[int]:
    """Number of skip tensors collected after each down block (conv_in's output counts first)."""
    counts, total = [], 1
    for block in down_blocks:
        total += block_skip_count(block)
        counts.append(total)
    return counts


def down_scale(down_blocks: nn.ModuleList) -> int:
    """Total spatial reduction of the down path (8 for SVD: three downsamplers)."""
    return 2 ** sum(block.downsamplers is not None for block in down_blocks)


class Prepared(NamedTuple):
    """Per-call quantities both forwards start from."""

    batch: int
    frames: int
    emb: torch.Tensor  # (B*F, time_embed_dim)
    context: torch.Tensor  # (B*F, tokens, dim)
    indicator: torch.Tensor  # (B, F) zeros: every frame is a video frame
    hidden: torch.Tensor  # conv_in output, (B*F, C0, h, w)


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
        """The compute dtype (not the storage dtype of fp8 weights)."""
        return compute_placement(self)[1]

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
        self.ensure_batch_quirk()
        return b, f

    def ensure_batch_quirk(self) -> None:
        """Install the diffusers-0.27 context layout on first use unless it was set explicitly."""
        if not hasattr(self, "official_batch_quirk"):
            set_official_batch_quirk(self, True)

    def embed_time(
        self, timestep: torch.Tensor | float, added_time_ids: torch.Tensor, batch: int, frames: int
    ) -> torch.Tensor:
        """Timestep + added-time-id embedding, one row per frame: (B*F, time_embed_dim)."""
        device = compute_placement(self)[0]
        t = torch.as_tensor(timestep, device=device)
        if not t.is_floating_point():
            t = t.to(torch.int64)
        if t.numel() not in (1, batch):
            raise InputError(f"timestep must be a scalar or one value per batch item ({batch}), got {tuple(t.shape)}.")
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(self.time_proj(t).to(self.param_dtype))
        ids = self.add_time_proj(added_time_ids.to(device).flatten()).reshape(batch, -1)
        emb = emb + self.add_embedding(ids.to(emb.dtype))
        return emb.repeat_interleave(frames, dim=0)

    def prepare(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        what: str,
    ) -> Prepared:
        """Check the inputs, embed the time, repeat the context per frame, apply conv_in."""
        batch, frames = self.check_inputs(sample, encoder_hidden_states, added_time_ids, what)
        dtype = self.param_dtype
        return Prepared(
            batch,
            frames,
            self.embed_time(timestep, added_time_ids, batch, frames),
            encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0),
            torch.zeros(batch, frames, dtype=dtype, device=sample.device),
            self.conv_in(sample.flatten(0, 1).to(dtype)),
        )

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


def _diffusers_027_time_context(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Lay out the temporal blocks' cross-attention context as diffusers 0.27 did (see below)."""
    if not getattr(module, "official_batch_quirk", False):
        return None
    hidden = args[0] if args else kwargs["hidden_states"]
    context = kwargs.get("encoder_hidden_states")
    batch = hidden.shape[0] // kwargs["num_frames"]
    if context is None or batch == 1:
        return None
    rows = hidden.shape[1]
    kwargs["encoder_hidden_states"] = context.unflatten(0, (batch, rows)).transpose(0, 1).flatten(0, 1)
    return args, kwargs


def set_official_batch_quirk(model: nn.Module, enabled: bool = True) -> None:
    """Reproduce (or not) diffusers 0.27's batch mix-up in the SVD temporal cross-attention.

    MimicMotion and DisPose run on diffusers 0.27, whose ``TransformerSpatioTemporalModel`` builds the
    temporal blocks' context in (position, batch) order while the hidden rows are (batch, position):
    with a CFG batch of 2, row r attends to the image embedding of batch item r mod 2, so the
    unconditional and conditional embeddings alternate over positions. Later diffusers fixed this.
    The official outputs (and the goldens) depend on it whenever B > 1, so it is on by default;
    ``enabled=False`` gives the corrected behaviour. B = 1 is unaffected either way.

    A pre-hook on each temporal block does it; the flag lives on the blocks, so copies of the model
    (``copy.deepcopy``) keep their own setting.
    """
    for module in model.modules():
        for block in getattr(module, "temporal_transformer_blocks", ()):
            if _diffusers_027_time_context not in block._forward_pre_hooks.values():
                block.register_forward_pre_hook(_diffusers_027_time_context, with_kwargs=True)
            block.official_batch_quirk = enabled
    model.official_batch_quirk = enabled
