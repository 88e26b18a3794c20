"""Load MimicMotion 1.1: the SVD xt 1.1 folder plus ``MimicMotion_1-1.pth``.

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
from safetensors.torch import load_file

from ..errors import CheckpointKeyError
from ..models.posenet import PoseNet
from ..models.unet import MimicMotionUNet
from .checkpoint import check_dtype, load_strict, name_preview, read_checkpoint, strip_prefix
from .layout import BY_KEY
from .svd import SVDFolder, build_image_encoder, build_vae, cast, read_svd_folder

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
    svd_dir: Path
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


def _overlay(base_file: Path, state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The SVD component's weights with the checkpoint's ``prefix`` keys laid over them."""
    merged = load_file(str(base_file))
    merged.update(strip_prefix(state, prefix))
    return merged


def build_unet_and_pose_net(
    unet_config: dict, state: dict[str, torch.Tensor], *, file: Path
) -> tuple[MimicMotionUNet, PoseNet]:
    """The UNet (from the SVD config) and PoseNet, filled strictly from ``unet.*`` / ``pose_net.*``."""
    with torch.device("meta"):
        unet = MimicMotionUNet.from_config(unet_config)
        pose_net = PoseNet(noise_latent_channels=unet.config.block_out_channels[0])
    load_strict(unet, strip_prefix(state, "unet."), file=file, what="MimicMotion UNet (unet.*)")
    load_strict(pose_net, strip_prefix(state, "pose_net."), file=file, what="MimicMotion PoseNet (pose_net.*)")
    return unet.eval().requires_grad_(False), pose_net.eval().requires_grad_(False)


def load_mimicmotion(
    svd_dir: str | Path, mimicmotion_path: str | Path, dtype: torch.dtype = torch.float32
) -> MimicMotionModels:
    """Build the MimicMotion UNet, PoseNet, temporal VAE and CLIP image encoder (strict, offline)."""
    check_dtype(dtype, "MimicMotion loader")
    folder: SVDFolder = read_svd_folder(svd_dir, dtype)
    path = Path(mimicmotion_path)
    state = _read_mimicmotion(path)

    unet, pose_net = build_unet_and_pose_net(folder.unet_config, state, file=path)
    vae_file = path if any(k.startswith("vae.") for k in state) else folder.vae_file
    vae = build_vae(folder.vae_config, _overlay(folder.vae_file, state, "vae."), file=vae_file)
    enc_file = path if any(k.startswith("image_encoder.") for k in state) else folder.image_encoder_file
    image_encoder = build_image_encoder(
        folder.image_encoder_config, _overlay(folder.image_encoder_file, state, "image_encoder."), file=enc_file
    )
    return MimicMotionModels(
        unet=cast(unet, dtype),
        pose_net=cast(pose_net, dtype),
        vae=cast(vae, dtype),
        image_encoder=cast(image_encoder, dtype),
        scheduler_config=dict(folder.scheduler_config),
        clip_size=folder.clip_size,
        clip_mean=folder.clip_mean,
        clip_std=folder.clip_std,
        svd_dir=folder.root,
        mimicmotion_path=path,
        dtype=dtype,
    )
