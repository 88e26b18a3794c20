"""Tiny SVD xt 1.1 diffusers folder: ``diffusers/stable-video-diffusion-img2vid-xt-1-1/``.

Real file names and config fields (model_index.json, unet/vae/image_encoder config.json, the fp16
weight variants, scheduler and feature-extractor configs with the real SVD values) and real key
names, with the tiny widths of the golden cases (UNet channels 32, cross-attention 32, CLIP width
32). The UNet weights are not written: MimicMotion's loader builds the UNet from this config and
fills it from ``MimicMotion_1-1.pth`` only (as the official code does).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import save_file

from ..loading.layout import BY_KEY, SVD_SINGLE_FILE
from ..loading.sgm_keys import clip_to_open_clip, vae_to_sgm
from ..loading.svd_single_file import (
    CONFIG_METADATA_KEY,
    SVD_XT_FEATURE_EXTRACTOR_CONFIG as _FEATURE_EXTRACTOR,
    SVD_XT_SCHEDULER_CONFIG as _SCHEDULER,
)

T = TypeVar("T")
_SEED = 1600
TINY_UNET_CONFIG: dict = {
    "_class_name": "UNetSpatioTemporalConditionModel", "_diffusers_version": "0.24.0.dev0",
    "addition_time_embed_dim": 16, "block_out_channels": [32, 32, 32, 32], "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "in_channels": 8, "layers_per_block": 2, "num_attention_heads": [1, 2, 2, 2], "num_frames": 25,
    "out_channels": 4, "projection_class_embeddings_input_dim": 48, "sample_size": 16,
    "transformer_layers_per_block": 1,
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
}
_VAE = {
    "_class_name": "AutoencoderKLTemporalDecoder", "_diffusers_version": "0.24.0.dev0",
    "block_out_channels": [32, 32, 32, 32], "down_block_types": ["DownEncoderBlock2D"] * 4, "force_upcast": True,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "out_channels": 3, "sample_size": 64,
    "scaling_factor": 0.18215,
}
_IMAGE_ENCODER = {
    "architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model", "hidden_size": 32,
    "intermediate_size": 64, "projection_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_channels": 3, "image_size": 224, "patch_size": 32, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02,
    "torch_dtype": "float16",
}
_MODEL_INDEX = {
    "_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"], "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"], "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}


def write_json(path: Path, data: dict, *, sort_keys: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=sort_keys))
    return path


def seeded(seed: int, factory: Callable[[], T]) -> T:
    """Build with a fixed seed without touching the caller's global RNG state (files are reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def save_pth(state: dict, key: str, models_dir: Path) -> list[Path]:
    """``torch.save`` a state dict (flat, or in the real file's container) at the layout path of ``key``."""
    path = BY_KEY[key].path_in(models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return [path]


def save_fp16(state: dict[str, torch.Tensor], path: Path, *, metadata: dict[str, str] | None = None) -> Path:
    """A state dict as a float16 safetensors file (the diffusers ``fp16`` variant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def write_tiny_models(models_dir: Path) -> list[Path]:
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = BY_KEY["svd"].path_in(models_dir)
    written = [
        write_json(root / "model_index.json", _MODEL_INDEX),
        write_json(root / "unet" / "config.json", TINY_UNET_CONFIG),
        write_json(root / "vae" / "config.json", _VAE),
        write_json(root / "image_encoder" / "config.json", _IMAGE_ENCODER),
        write_json(root / "scheduler" / "scheduler_config.json", _SCHEDULER),
        write_json(root / "feature_extractor" / "preprocessor_config.json", _FEATURE_EXTRACTOR),
    ]
    vae, encoder = seeded(_SEED, lambda: (
        AutoencoderKLTemporalDecoder.from_config(_VAE),
        CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(_IMAGE_ENCODER)),
    ))
    _identity_quant_conv(vae)
    return written + [
        save_fp16(vae.state_dict(), root / "vae" / "diffusion_pytorch_model.fp16.safetensors"),
        save_fp16(encoder.state_dict(), root / "image_encoder" / "model.fp16.safetensors"),
        write_single_file(vae.state_dict(), encoder.state_dict(), SVD_SINGLE_FILE.path_in(models_dir)),
    ]


def _identity_quant_conv(vae: torch.nn.Module) -> None:
    """SGM's SVD VAE has no quant_conv; the converted diffusers VAE's is the identity (loading/sgm_keys.py)."""
    with torch.no_grad():
        vae.quant_conv.weight.copy_(torch.eye(vae.quant_conv.weight.shape[0])[..., None, None])
        vae.quant_conv.bias.zero_()


def _unet_stand_in() -> dict[str, torch.Tensor]:
    """A few tensors with SGM UNet names: the loader must count and ignore the UNet part."""
    width, emb = TINY_UNET_CONFIG["block_out_channels"][0], 4 * TINY_UNET_CONFIG["block_out_channels"][0]
    return seeded(_SEED + 1, lambda: {
        "model.diffusion_model.input_blocks.0.0.weight": torch.randn(width, 8, 3, 3),
        "model.diffusion_model.input_blocks.0.0.bias": torch.randn(width),
        "model.diffusion_model.time_embed.0.weight": torch.randn(emb, width),
        "model.diffusion_model.out.2.weight": torch.randn(4, width, 3, 3),
    })


def write_single_file(vae_state: dict, encoder_state: dict, path: Path) -> Path:
    """The same VAE and CLIP weights as the tiny folder, as an SGM single file (fp16, like svd_xt_1_1).

    The tiny configs go into the metadata (``CONFIG_METADATA_KEY``): the real file has none, and
    the loader then uses the published SVD xt configs.
    """
    configs = {"unet": TINY_UNET_CONFIG, "vae": _VAE, "image_encoder": _IMAGE_ENCODER,
               "scheduler": _SCHEDULER, "feature_extractor": _FEATURE_EXTRACTOR}
    state = vae_to_sgm(vae_state) | clip_to_open_clip(encoder_state) | _unet_stand_in()
    return save_fp16(state, path, metadata={CONFIG_METADATA_KEY: json.dumps(configs)})
