"""DisPose's hybrid ControlNet: an encoder copy of the SVD UNet with motion and keypoint inputs.

Parameter names equal the official ``ControlNetSVDModel`` (``DisPose.pth`` loads unchanged):
``conv_in``, ``time_embedding``, ``add_embedding``, ``down_blocks``, ``mid_block`` (the UNet's
encoder), ``controlnet_down_blocks`` (a 1x1 conv per skip), ``controlnet_mid_block``,
``controlnet_cond_embedding`` (motion encoder) and ``point_adapter``.

The official forward recomputes the motion encoder and the point adapter at every step, for every
tile and for both CFG halves. Here the work is split: ``encode_motion`` and ``encode_points`` run
once per tile call for both halves (``sampling.control.tile_control_features``), and ``forward``
adds those features -- the same ones to every batch entry, exactly like the official code does
for its CFG batch.

Official order inside forward: conv_in(sample) + motion feature -> down block i -> + point level i
(the skips of block i are taken before this addition) -> ... -> mid block; every skip through its
1x1 conv, the mid output through ``controlnet_mid_block``, all times ``conditioning_scale``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block
from torch import nn

from ..errors import InputError
from .cast_layers import compute_placement
from .layer_ops import PLAIN_OPS, ModelOps, apply_ops
from .motion_encoder import FLOW_CHANNELS, MotionEncoder
from .point_adapter import PointAdapter
from .svd_trunk import SVDEncoderMixin, block_skip_count, down_scale

VAE_SCALE = 8  # pixels per latent cell

# Trunk modules that ``from_unet`` copies from the UNet (the official code does not copy add_embedding).
COPIED_FROM_UNET: tuple[str, ...] = ("conv_in", "time_embedding", "down_blocks", "mid_block")


@dataclass(frozen=True)
class ControlNetDims:
    """Sizes that the UNet config does not give (official defaults; tiny models use smaller ones)."""

    motion_channels: tuple[int, ...] = (16, 32, 96, 256)
    point_embedding_channels: int = 1280
    point_mid_dim: int = 128


def _per_item(values, n: int) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values] * n


class HybridControlNet(SVDEncoderMixin, nn.Module):
    """SVD encoder trunk + motion encoder + point adapter -> down/mid residuals for MimicMotionUNet."""

    def __init__(self, unet_config: Mapping, dims: ControlNetDims = ControlNetDims(),
                 ops: ModelOps = PLAIN_OPS) -> None:
        """``ops``: the host's layers, attention and stop check, given to every sub-model (the diffusers
        blocks, motion encoder and point adapter build torch layers, which ``apply_ops`` switches)."""
        super().__init__()
        cfg = dict(unet_config)
        channels = list(cfg["block_out_channels"])
        types = list(cfg["down_block_types"])
        n = len(types)
        heads = _per_item(cfg["num_attention_heads"], n)
        cross = _per_item(cfg["cross_attention_dim"], n)
        layers = _per_item(cfg["layers_per_block"], n)
        tlayers = _per_item(cfg.get("transformer_layers_per_block", 1), n)
        temb = channels[0] * 4
        self.unet_config = cfg
        self.dims = dims

        self.conv_in = nn.Conv2d(cfg["in_channels"], channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(channels[0], temb)
        self.add_time_proj = Timesteps(cfg["addition_time_embed_dim"], True, downscale_freq_shift=0)
        self.add_embedding = TimestepEmbedding(cfg["projection_class_embeddings_input_dim"], temb)
        self.down_blocks = nn.ModuleList(
            get_down_block(
                types[i], num_layers=layers[i], transformer_layers_per_block=tlayers[i],
                in_channels=channels[max(i - 1, 0)], out_channels=channels[i], temb_channels=temb,
                add_downsample=i < n - 1, resnet_eps=1e-5, cross_attention_dim=cross[i],
                num_attention_heads=heads[i], resnet_act_fn="silu",
            )
            for i in range(n)
        )
        self.mid_block = UNetMidBlockSpatioTemporal(
            channels[-1], temb_channels=temb, transformer_layers_per_block=tlayers[-1],
            cross_attention_dim=cross[-1], num_attention_heads=heads[-1],
        )
        skip_channels = [channels[0]]
        for c, block in zip(channels, self.down_blocks):
            skip_channels += [c] * block_skip_count(block)
        self.controlnet_down_blocks = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1) for c in skip_channels)
        self.controlnet_mid_block = nn.Conv2d(channels[-1], channels[-1], kernel_size=1)
        self.controlnet_cond_embedding = MotionEncoder(channels[0], dims.motion_channels)
        self.point_adapter = PointAdapter(
            dims.point_embedding_channels, tuple(channels), self.level_rates(), dims.point_mid_dim
        )
        apply_ops(self, ops)

    def level_rates(self) -> tuple[int, ...]:
        """Pixel stride of the hidden state after each down block ((16, 32, 64, 64) for SVD)."""
        rates, rate = [], VAE_SCALE
        for block in self.down_blocks:
            rate *= 2 if block.downsamplers is not None else 1
            rates.append(rate)
        return tuple(rates)

    @classmethod
    def from_unet(cls, unet: nn.Module, dims: ControlNetDims = ControlNetDims(),
                  ops: ModelOps = PLAIN_OPS) -> HybridControlNet:
        """Build for ``unet``'s config and copy its encoder weights (as the official ``from_unet``)."""
        net = cls(unet.config, dims, ops)
        for name in COPIED_FROM_UNET:
            getattr(net, name).load_state_dict(getattr(unet, name).state_dict())
        return net.to(device=unet.conv_in.weight.device, dtype=unet.conv_in.weight.dtype)

    # ---- step-invariant encoders ------------------------------------------------------------

    def encode_motion(
        self, dense_flow: torch.Tensor, traj_flow: torch.Tensor, frames_per_chunk: int = 8
    ) -> torch.Tensor:
        """(B,F-1,2,H,W) dense CMP flow and trajectory flow (frames 1..F-1) -> (B*F, C0, H/8, W/8).

        A zero flow is prepended for frame 0 (the reference), as in the official encoder. Frames are
        processed in chunks to bound the full-resolution activations.
        """
        if dense_flow.shape != traj_flow.shape or dense_flow.ndim != 5 or dense_flow.shape[2] != FLOW_CHANNELS:
            raise InputError(
                f"Motion encoder: dense and trajectory flows must both be (B, F-1, 2, H, W), got "
                f"{tuple(dense_flow.shape)} and {tuple(traj_flow.shape)}."
            )
        b, _, _, h, w = dense_flow.shape
        step = VAE_SCALE * down_scale(self.down_blocks)
        if h % step or w % step:
            raise InputError(f"Motion encoder: flow size {h}x{w} must be a multiple of {step}; resize the flows.")
        device, dtype = compute_placement(self)

        def with_reference(flow: torch.Tensor) -> torch.Tensor:
            flow = flow.to(device=device, dtype=dtype)
            return torch.cat([flow.new_zeros(b, 1, *flow.shape[2:]), flow], dim=1).flatten(0, 1)

        dense, traj = with_reference(dense_flow), with_reference(traj_flow)
        return torch.cat([
            self.controlnet_cond_embedding(dense[i:i + frames_per_chunk], traj[i:i + frames_per_chunk])
            for i in range(0, dense.shape[0], frames_per_chunk)
        ])

    def encode_points(
        self,
        ref_point_emb: torch.Tensor,
        keypoints: torch.Tensor,
        subset: torch.Tensor,
        height: int,
        width: int,
    ) -> list[torch.Tensor]:
        """Reference embeddings (K,C) at each frame's keypoints (F,K,2 normalised; subset F,K with -1 =
        undetected) -> one (F, C_i, h_i, w_i) feature per down level (pixel size height x width)."""
        return self.point_adapter(ref_point_emb, keypoints, subset, height, width)

    # ---- per-step forward -------------------------------------------------------------------

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        motion_feature: torch.Tensor | None,
        point_features: list[torch.Tensor] | None = None,
        conditioning_scale: float = 1.0,
        motion_scale: float = 1.0,
        point_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B,F,8,h,w) UNet input -> (down residuals, one per UNet skip, (B*F,C,h_j,w_j); mid residual).

        ``motion_feature`` / ``point_features`` come from ``encode_motion`` / ``encode_points``
        for these F frames, with 1 or B entries per frame; one entry serves the whole batch (both
        CFG halves, as in the official pipeline). A scale of 0 switches that signal off.
        """
        batch, frames, emb, context, indicator, hidden = self.prepare(
            sample, timestep, encoder_hidden_states, added_time_ids, "DisPose ControlNet"
        )
        if motion_feature is not None and motion_scale != 0:
            hidden = _add_per_frame(hidden, motion_feature, motion_scale, batch, frames, "motion feature")

        after_block = None
        if point_features is not None and point_scale != 0:
            if len(point_features) != len(self.down_blocks):
                raise InputError(
                    f"DisPose ControlNet: {len(point_features)} point feature levels given, "
                    f"{len(self.down_blocks)} needed; use encode_points of this ControlNet."
                )

            def after_block(i: int, h: torch.Tensor) -> torch.Tensor:
                return _add_per_frame(h, point_features[i], point_scale, batch, frames, f"point level {i}")

        hidden, skips = self.run_down(hidden, emb, context, indicator, after_block)
        hidden = self.run_mid(hidden, emb, context, indicator)
        down = [conv(skip) * conditioning_scale for skip, conv in zip(skips, self.controlnet_down_blocks)]
        return down, self.controlnet_mid_block(hidden) * conditioning_scale


def _add_per_frame(
    hidden: torch.Tensor, feature: torch.Tensor, scale: float, batch: int, frames: int, what: str
) -> torch.Tensor:
    """hidden (B*F,C,h,w) + scale * feature, where feature has one entry per frame (F) or per item (B*F)."""
    if feature.shape[1:] != hidden.shape[1:] or feature.shape[0] not in (frames, batch * frames):
        raise InputError(
            f"DisPose ControlNet: {what} has shape {tuple(feature.shape)}, expected ({frames} or "
            f"{batch * frames}, {', '.join(map(str, hidden.shape[1:]))}); encode it for the same frames and size."
        )
    feature = feature.to(hidden.dtype)
    if scale != 1:
        feature = feature * scale
    if feature.shape[0] == hidden.shape[0]:
        return hidden + feature
    return (hidden.unflatten(0, (batch, frames)) + feature).flatten(0, 1)
