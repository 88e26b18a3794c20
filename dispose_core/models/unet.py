"""MimicMotion UNet: diffusers' SVD spatio-temporal UNet plus pose latents and ControlNet residuals.

The parameters (and so the state-dict keys of ``unet.*`` in ``MimicMotion_1-1.pth``) are exactly
those of ``diffusers.UNetSpatioTemporalConditionModel``; only ``forward`` differs:

* PoseNet features are added to the ``conv_in`` output (before the first down block);
* ControlNet residuals are added to the stored skips, and the mid residual once after the mid block.

Residual accumulation quirk (kept because the trained DisPose weights depend on it): the official
code re-adds the whole residual list to all skips collected so far after *every* down block, so skip
j receives residual j once for each down block from the one that produced it to the last. We add
``m_j * r_j`` once, with ``m_j`` derived from the block structure (``residual_multiplicities``):
[4,4,4,4,3,3,3,2,2,2,1,1] for the real SVD config.
"""
from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel

from ..errors import InputError
from .layer_ops import PLAIN_OPS, ModelOps, apply_ops
from .svd_trunk import SVDEncoderMixin, skip_counts


class MimicMotionUNet(SVDEncoderMixin, UNetSpatioTemporalConditionModel):
    """SVD-xt UNet with MimicMotion's pose input and DisPose's residual inputs."""

    @classmethod
    def build(cls, unet_config: dict, ops: ModelOps = PLAIN_OPS) -> MimicMotionUNet:
        """The UNet for an SVD config with a host's layers, attention and stop check (``ModelOps``)."""
        return apply_ops(cls.from_config(unet_config), ops)

    def residual_multiplicities(self) -> list[int]:
        """How many times the official down loop adds residual j to skip j (see module docstring)."""
        counts = skip_counts(self.down_blocks)
        return [sum(c > j for c in counts) for j in range(counts[-1])]

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        pose_latents: torch.Tensor | None = None,
        down_block_additional_residuals: list[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,F,8,h,w) scaled noisy latents ++ image latents -> (B,F,4,h,w) v-prediction.

        ``pose_latents``: (B*F, C0, h, w), batch-major. Residuals: one per skip, (B*F, C_j, h_j, w_j).
        """
        batch, frames, emb, context, indicator, hidden = self.prepare(
            sample, timestep, encoder_hidden_states, added_time_ids, "MimicMotion UNet"
        )
        dtype = hidden.dtype
        if pose_latents is not None:
            if tuple(pose_latents.shape) != tuple(hidden.shape):
                raise InputError(
                    f"MimicMotion UNet: pose_latents must be (B*F, C, h, w) = {tuple(hidden.shape)}, "
                    f"got {tuple(pose_latents.shape)}; run PoseNet on every frame of the tile."
                )
            hidden = hidden + pose_latents.to(dtype)

        hidden, skips = self.run_down(hidden, emb, context, indicator)
        if down_block_additional_residuals is not None:
            skips = self._add_residuals(skips, down_block_additional_residuals)

        hidden = self.run_mid(hidden, emb, context, indicator)
        if mid_block_additional_residual is not None:
            if mid_block_additional_residual.shape != hidden.shape:
                raise InputError(
                    f"MimicMotion UNet: mid residual shape {tuple(mid_block_additional_residual.shape)} != "
                    f"{tuple(hidden.shape)}; ControlNet and UNet must see the same frames and size."
                )
            hidden = hidden + mid_block_additional_residual.to(dtype)

        for block in self.up_blocks:
            n = len(block.resnets)
            block_skips, skips = tuple(skips[-n:]), skips[:-n]
            kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            hidden = block(
                hidden_states=hidden, temb=emb, res_hidden_states_tuple=block_skips,
                image_only_indicator=indicator, **kwargs,
            )
        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        return hidden.reshape(batch, frames, *hidden.shape[1:])

    def _add_residuals(self, skips: list[torch.Tensor], residuals: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(residuals) != len(skips):
            raise InputError(
                f"MimicMotion UNet: got {len(residuals)} ControlNet down residuals, the UNet has {len(skips)} "
                "skips; the ControlNet was built for a different UNet config."
            )
        out = []
        for skip, res, m in zip(skips, residuals, self.residual_multiplicities()):
            if res.shape != skip.shape:
                raise InputError(
                    f"MimicMotion UNet: ControlNet residual shape {tuple(res.shape)} != skip shape "
                    f"{tuple(skip.shape)}; ControlNet and UNet must see the same frames and size."
                )
            out.append(skip + m * res.to(skip.dtype))
        return out
