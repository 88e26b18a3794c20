"""Tiny ``mimicmotion/MimicMotion_1-1.pth``: ``unet.*`` + ``pose_net.*`` with the real key names.

The UNet matches the tiny SVD folder's config (``tiny/svd.py``); PoseNet has its real structure with
``noise_latent_channels`` = that UNet's first width. Written with ``torch.save`` in float16, like the
real file (3.05 GB for 1.52 B parameters).
"""
from __future__ import annotations

from pathlib import Path

from .svd import TINY_UNET_CONFIG, save_pth, seeded

_SEED = 1700


def write_tiny_models(models_dir: Path) -> list[Path]:
    from ..models.posenet import PoseNet
    from ..models.unet import MimicMotionUNet

    unet, pose_net = seeded(_SEED, lambda: (
        MimicMotionUNet.from_config(TINY_UNET_CONFIG),
        PoseNet(noise_latent_channels=TINY_UNET_CONFIG["block_out_channels"][0]),
    ))
    state = {f"unet.{k}": v.half() for k, v in unet.state_dict().items()}
    state |= {f"pose_net.{k}": v.half() for k, v in pose_net.state_dict().items()}
    return save_pth(state, "mimicmotion", models_dir)
