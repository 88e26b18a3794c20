"""VRAM estimate per sampler phase: the weights the phase loads plus the ``memory_required`` the
MimicMotion Sampler passes to ComfyUI for it (same functions: ``tile_activation_bytes`` for sampling,
``vae_activation_bytes`` for encoding and decoding), so a GPU run's measured/estimated ratio checks
that code. :func:`mode_estimates` gives the same estimate at the real widths without a GPU (models
built on the meta device), for the README's table."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dispose_core.models.cast_layers import compute_placement, store_weights_fp8, weight_bytes
from dispose_core.sampling.memory import tile_activation_bytes, vae_activation_bytes

GIB = 2**30
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16}  # the benchmark modes' loader precisions


@dataclass(frozen=True)
class PhaseEstimate:
    """Bytes a phase needs on the GPU: the weights it loads and the working memory it asks ComfyUI for."""

    weights: int
    working: int

    @property
    def total(self) -> int:
        return self.weights + self.working


def phase_estimates(*, image_encoder: torch.nn.Module, vae: torch.nn.Module, unet: torch.nn.Module,
                    sample_models: Sequence[torch.nn.Module], height: int, width: int, tile: int,
                    decode_chunk: int, cfg: bool, usable_bytes: int | None = None) -> dict[str, PhaseEstimate]:
    """Estimate of the encode, sample and decode phases at ``height`` x ``width`` pixels.

    ``sample_models``: what the sample phase loads (UNet + PoseNet, the DisPose ControlNet if any);
    ``unet`` gives its compute dtype. ``usable_bytes`` (low-VRAM mode): ComfyUI then keeps at most
    ``usable_bytes - memory_required`` of the sample weights resident (partial load; the encode and
    decode models are loaded whole).
    """
    vae_dtype = compute_placement(vae)[1]
    working = tile_activation_bytes(height, width, tile, compute_placement(unet)[1], cfg=cfg)
    sample_weights = sum(weight_bytes(m) for m in sample_models)
    if usable_bytes is not None:
        sample_weights = max(0, min(sample_weights, usable_bytes - working))
    return {
        "encode": PhaseEstimate(weight_bytes(image_encoder) + weight_bytes(vae),
                                vae_activation_bytes(1, height, width, vae_dtype, decode=False)),
        "sample": PhaseEstimate(sample_weights, working),
        "decode": PhaseEstimate(weight_bytes(vae), vae_activation_bytes(decode_chunk, height, width, vae_dtype,
                                                                         decode=True)),
    }


@functools.cache
def real_width_models(dtype: torch.dtype, *, fp8: bool = False) -> dict[str, torch.nn.Module]:
    """SVD xt 1.1 CLIP ViT-H image encoder and VAE, MimicMotion UNet + PoseNet and the DisPose
    ControlNet at the released weights' widths, in ``dtype`` on the meta device (shapes only), with
    the UNet and ControlNet weights stored as the loaders store them for ``weight_dtype`` fp8_e4m3fn."""
    from dispose_core.loading.svd import cast, meta_image_encoder, meta_vae
    from dispose_core.loading.svd_single_file import (SVD_XT_IMAGE_ENCODER_CONFIG, SVD_XT_UNET_CONFIG,
                                                      SVD_XT_VAE_CONFIG)
    from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
    from dispose_core.models.posenet import PoseNet
    from dispose_core.models.unet import MimicMotionUNet

    with torch.device("meta"):
        unet = MimicMotionUNet.from_config(SVD_XT_UNET_CONFIG)
        built = {"image_encoder": meta_image_encoder(SVD_XT_IMAGE_ENCODER_CONFIG), "vae": meta_vae(SVD_XT_VAE_CONFIG),
                 "unet": unet, "pose_net": PoseNet(unet.config.block_out_channels[0]),
                 "controlnet": HybridControlNet(unet.config, ControlNetDims())}
    # the loaders' cast; "meta": diffusers creates a few scalar blend factors on the CPU even under a meta context
    built = {name: cast(module, dtype, "meta") for name, module in built.items()}
    if fp8:
        for name in ("unet", "controlnet"):
            store_weights_fp8(built[name])
    return built


def mode_estimates(mode, *, height: int, width: int, tile: int, decode_chunk: int) -> dict[str, PhaseEstimate]:
    """The estimate for a benchmark mode (``bench.gpu.modes.Mode``) at the real widths, no GPU needed."""
    models = real_width_models(PRECISIONS[mode.precision], fp8=mode.weight_dtype == "fp8_e4m3fn")
    sample = [models["unet"], models["pose_net"]] + ([models["controlnet"]] if mode.dispose else [])
    usable = int(mode.usable_gib * GIB) if mode.usable_gib is not None else None
    return phase_estimates(image_encoder=models["image_encoder"], vae=models["vae"], unet=models["unet"],
                           sample_models=sample, height=height, width=width, tile=tile, decode_chunk=decode_chunk,
                           cfg=True, usable_bytes=usable)
