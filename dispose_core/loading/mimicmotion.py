"""Load MimicMotion 1.1: SVD xt 1.1 (diffusers folder or single file) plus ``MimicMotion_1-1.pth``.

``MimicMotion_1-1.pth`` is a flat state dict with ``unet.*`` (the whole fine-tuned SVD UNet; the UNet
is built from the SVD folder's config only, never from its weights) and ``pose_net.*``; ``vae.*`` and
``image_encoder.*`` keys, if present, override the SVD folder's weights (as the official
``load_state_dict(strict=False)`` on its MimicMotionModel would). Unlike the official code, any
missing or unknown key is an error (see ``manifests/mimicmotion.json``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointKeyError
from ..models.layer_ops import PLAIN_OPS, ModelOps
from ..models.posenet import PoseNet
from ..models.unet import MimicMotionUNet
from ..models.units import Denoiser, ImageEncoder
from .checkpoint import check_dtype, load_strict, name_preview, read_checkpoint, strip_prefix
from .layout import BY_KEY
from .svd import SVDSource, build_image_encoder, build_vae, cast, meta_image_encoder, meta_vae, shapes
from .svd_single_file import read_svd

# Key prefixes of MimicMotion_1-1.pth: the attribute names of the official MimicMotionModel.
PREFIXES = ("unet.", "pose_net.", "vae.", "image_encoder.")


@dataclass
class MimicMotionModels:
    """Everything the sampler needs from SVD + MimicMotion, in one dtype, on CPU."""

    unet: MimicMotionUNet
    pose_net: PoseNet
    vae: torch.nn.Module  # diffusers AutoencoderKLTemporalDecoder
    image_encoder: torch.nn.Module  # transformers CLIPVisionModelWithProjection
    scheduler_config: dict
    clip_size: tuple[int, int]  # (height, width) of the CLIP input
    clip_mean: tuple[float, ...]
    clip_std: tuple[float, ...]
    svd_dir: Path  # the SVD folder or single file
    mimicmotion_path: Path
    dtype: torch.dtype


def _read_mimicmotion(path: Path) -> dict[str, torch.Tensor]:
    BY_KEY["mimicmotion"].require(path)
    state = read_checkpoint(path, "MimicMotion checkpoint")
    unknown = [k for k in state if not k.startswith(PREFIXES)]
    if unknown:
        raise CheckpointKeyError(
            f"MimicMotion checkpoint: '{path}' has {len(unknown)} unexpected keys outside "
            f"{'/'.join(p.rstrip('.') for p in PREFIXES)}: {name_preview(unknown)}. "
            f"Use {BY_KEY['mimicmotion'].name} from {BY_KEY['mimicmotion'].source}."
        )
    return state


def _overlay(base: dict[str, torch.Tensor], state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The SVD component's weights with the checkpoint's ``prefix`` keys laid over them."""
    base.update(strip_prefix(state, prefix))
    return base


def build_unet_and_pose_net(
    unet_config: dict, state: dict[str, torch.Tensor], *, file: Path, ops: ModelOps = PLAIN_OPS
) -> tuple[MimicMotionUNet, PoseNet]:
    """The UNet (from the SVD config) and PoseNet, filled strictly from ``unet.*`` / ``pose_net.*``,
    built with ``ops`` (a host's layer classes, attention and stop check; plain torch by default)."""
    with torch.device("meta"):
        unet = MimicMotionUNet.build(unet_config, ops)
        pose_net = PoseNet(noise_latent_channels=unet.config.block_out_channels[0], ops=ops)
    load_strict(unet, strip_prefix(state, "unet."), file=file, what="MimicMotion UNet (unet.*)")
    load_strict(pose_net, strip_prefix(state, "pose_net."), file=file, what="MimicMotion PoseNet (pose_net.*)")
    return unet.eval().requires_grad_(False), pose_net.eval().requires_grad_(False)


def _has(state: dict[str, torch.Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in state)


@dataclass
class MimicMotionParts:
    """The three units the sampler's phases take, each to be held (and offloaded) on its own."""

    image_encoder: ImageEncoder  # encode phase
    vae: torch.nn.Module  # encode and decode phases (diffusers AutoencoderKLTemporalDecoder)
    denoiser: Denoiser  # sample phase (UNet + PoseNet)
    svd: SVDSource  # where the VAE and CLIP came from (a folder, or a single file with its report)
    mimicmotion_path: Path
    dtype: torch.dtype


def load_mimicmotion_parts(
    svd: str | Path, mimicmotion_path: str | Path, dtype: torch.dtype = torch.float32, ops: ModelOps = PLAIN_OPS
) -> MimicMotionParts:
    """Build CLIP image encoder, temporal VAE and UNet + PoseNet (strict, offline) as separate units.

    ``svd`` is the SVD xt diffusers folder or the single file ``svd_xt_1_1.safetensors``; ``ops``
    builds the UNet and PoseNet (the VAE and CLIP stay plain torch models).
    """
    check_dtype(dtype, "MimicMotion loader")
    source = read_svd(svd, dtype)
    path = Path(mimicmotion_path)
    state = _read_mimicmotion(path)

    unet, pose_net = build_unet_and_pose_net(source.unet_config, state, file=path, ops=ops)
    vae_expected = shapes(meta_vae(source.vae_config))
    vae = build_vae(source.vae_config, _overlay(source.read_vae(vae_expected), state, "vae."),
                    file=path if _has(state, "vae.") else source.vae_file)
    enc_expected = shapes(meta_image_encoder(source.image_encoder_config))
    encoder = build_image_encoder(
        source.image_encoder_config, _overlay(source.read_image_encoder(enc_expected), state, "image_encoder."),
        file=path if _has(state, "image_encoder.") else source.image_encoder_file)
    return MimicMotionParts(
        image_encoder=ImageEncoder(cast(encoder, dtype), source.clip_size, source.clip_mean, source.clip_std),
        vae=cast(vae, dtype),
        denoiser=Denoiser(cast(unet, dtype), cast(pose_net, dtype), dict(source.scheduler_config)),
        svd=source, mimicmotion_path=path, dtype=dtype,
    )


def load_mimicmotion(
    svd_dir: str | Path, mimicmotion_path: str | Path, dtype: torch.dtype = torch.float32
) -> MimicMotionModels:
    """All four models in one object (the form ``sample_video`` takes); see ``load_mimicmotion_parts``."""
    parts = load_mimicmotion_parts(svd_dir, mimicmotion_path, dtype)
    enc, den = parts.image_encoder, parts.denoiser
    return MimicMotionModels(
        unet=den.unet, pose_net=den.pose_net, vae=parts.vae, image_encoder=enc.model,
        scheduler_config=den.scheduler_config, clip_size=enc.size, clip_mean=enc.mean, clip_std=enc.std,
        svd_dir=Path(svd_dir), mimicmotion_path=parts.mimicmotion_path, dtype=dtype,
    )
