"""The Stable Video Diffusion xt 1.1 weights MimicMotion uses: the diffusers folder (``SVDFolder``) or a single file.

What MimicMotion takes from it (``stable-video-diffusion-img2vid-xt-1-1/``): the UNet *config* (its
weights come from ``MimicMotion_1-1.pth``), the VAE and image encoder weights (fp16 variant or full
precision), the scheduler config and the CLIP preprocessing constants. Everything is read from
the folder (no hub), models are built on the meta device and filled strictly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import ModelFileError
from .checkpoint import load_strict, read_json
from .layout import BY_KEY

# Persistent in older transformers, a non-persistent buffer now: present in some files, never needed.
_OLD_CLIP_BUFFERS = ("vision_model.embeddings.position_ids",)


def _hint() -> str:
    entry = BY_KEY["svd"]
    return f"The '{entry.name}' folder is incomplete; download the missing file from {entry.source}."


def cast(module: nn.Module, dtype: torch.dtype, device: torch.device | str | None = None) -> nn.Module:
    """Plain ``nn.Module.to``: diffusers' override only adds a warning about fp32-kept modules (none here)."""
    return nn.Module.to(module, device=device, dtype=dtype)


def _variant_file(folder: Path, stem: str, dtype: torch.dtype, what: str) -> Path:
    """``<stem>.safetensors`` or its fp16 variant: full precision first for float32, else fp16 first."""
    names = [f"{stem}.safetensors", f"{stem}.fp16.safetensors"]
    if dtype != torch.float32:
        names.reverse()
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(f"{what}: no weight file in folder '{folder}' (looked for {' and '.join(names)}). {_hint()}")


@dataclass(frozen=True)
class SVDSource(ABC):
    """The configs of SVD xt plus access to its VAE and CLIP image-encoder weights (folder or single file)."""

    unet_config: dict
    vae_config: dict
    image_encoder_config: dict
    scheduler_config: dict
    feature_extractor_config: dict

    @property
    def clip_size(self) -> tuple[int, int]:
        """(height, width) the CLIP image encoder expects (224x224 for SVD)."""
        crop = self.feature_extractor_config.get("crop_size", self.image_encoder_config.get("image_size", 224))
        if isinstance(crop, Mapping):
            return int(crop["height"]), int(crop["width"])
        return int(crop), int(crop)

    @property
    def clip_mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.feature_extractor_config["image_mean"])

    @property
    def clip_std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.feature_extractor_config["image_std"])

    @property
    @abstractmethod
    def vae_file(self) -> Path:
        """The file named in error messages about these weights."""

    @property
    @abstractmethod
    def image_encoder_file(self) -> Path:
        """The file named in error messages about these weights."""

    @abstractmethod
    def read_vae(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        """The VAE's diffusers state dict (``expected``: the module's names and shapes)."""

    @abstractmethod
    def read_image_encoder(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        """The image encoder's transformers state dict."""


@dataclass(frozen=True)
class SVDFolder(SVDSource):
    """Configs and weight-file paths of an SVD xt diffusers folder (no tensors read yet)."""

    root: Path
    vae_weights: Path
    image_encoder_weights: Path

    @property
    def vae_file(self) -> Path:
        return self.vae_weights

    @property
    def image_encoder_file(self) -> Path:
        return self.image_encoder_weights

    def read_vae(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        return load_file(str(self.vae_weights))

    def read_image_encoder(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        return load_file(str(self.image_encoder_weights))


def read_svd_folder(svd_dir: str | Path, dtype: torch.dtype = torch.float32) -> SVDFolder:
    """Check the folder layout and read every config; choose the VAE / CLIP weight variants for ``dtype``."""
    root = BY_KEY["svd"].require(svd_dir)
    unet_config = read_json(root / "unet" / "config.json", "SVD UNet config", _hint())
    if unet_config.get("_class_name", "UNetSpatioTemporalConditionModel") != "UNetSpatioTemporalConditionModel":
        raise ModelFileError(
            f"'{root}' is not a Stable Video Diffusion folder: its UNet is a {unet_config['_class_name']}. "
            f"Use {BY_KEY['svd'].name} from {BY_KEY['svd'].source}."
        )
    feature = read_json(root / "feature_extractor" / "preprocessor_config.json", "SVD feature extractor config", _hint())
    for field in ("image_mean", "image_std"):
        if field not in feature:
            raise ModelFileError(f"SVD feature extractor config '{root / 'feature_extractor'}' has no '{field}'. {_hint()}")
    return SVDFolder(
        root=root,
        unet_config=unet_config,
        vae_config=read_json(root / "vae" / "config.json", "SVD VAE config", _hint()),
        image_encoder_config=read_json(root / "image_encoder" / "config.json", "SVD image encoder config", _hint()),
        scheduler_config=read_json(root / "scheduler" / "scheduler_config.json", "SVD scheduler config", _hint()),
        feature_extractor_config=feature,
        vae_weights=_variant_file(root / "vae", "diffusion_pytorch_model", dtype, "SVD VAE"),
        image_encoder_weights=_variant_file(root / "image_encoder", "model", dtype, "SVD image encoder"),
    )


def meta_vae(config: Mapping) -> nn.Module:
    """diffusers AutoencoderKLTemporalDecoder from its config, on the meta device (no weights yet)."""
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        return AutoencoderKLTemporalDecoder.from_config(dict(config))


def meta_image_encoder(config: Mapping) -> nn.Module:
    """transformers CLIPVisionModelWithProjection from its config, on the meta device."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        return CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(dict(config)))


def shapes(module: nn.Module) -> dict[str, torch.Size]:
    """Names and shapes of a module's state dict: what a checkpoint must provide."""
    return {k: v.shape for k, v in module.state_dict().items()}


def build_vae(config: Mapping, state_dict: Mapping[str, torch.Tensor], *, file: str | Path) -> nn.Module:
    """The temporal VAE from its config, filled strictly."""
    vae = meta_vae(config)
    load_strict(vae, dict(state_dict), file=file, what="SVD VAE")
    return vae.eval().requires_grad_(False)


def build_image_encoder(config: Mapping, state_dict: Mapping[str, torch.Tensor], *, file: str | Path) -> nn.Module:
    """The CLIP image encoder from its config, filled strictly."""
    model = meta_image_encoder(config)
    state_dict = {k: v for k, v in state_dict.items() if k not in _OLD_CLIP_BUFFERS}
    load_strict(model, state_dict, file=file, what="SVD image encoder")
    embeddings = model.vision_model.embeddings  # its position ids are a non-persistent buffer
    embeddings.register_buffer("position_ids", torch.arange(embeddings.num_positions)[None], persistent=False)
    return model.eval().requires_grad_(False)
