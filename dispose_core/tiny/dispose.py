"""Tiny ``dispose/DisPose.pth``: the full HybridControlNet state dict with the real key names.

Built for the tiny MimicMotion UNet config, with tiny motion-encoder widths and a point adapter
whose embedding width is the tiny DIFT feature width (``tiny/sd15.py``), so DIFT -> point adapter
runs end to end on tiny models. Every parameter is random like the golden cases' weights (weights
N(0,1)/sqrt(fan_in), biases 0.1 N(0,1)): the real file's zero-initialised layers are trained, so
every signal must have an effect here too.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .sd15 import TINY_DIFT_CHANNELS
from .svd import TINY_UNET_CONFIG, save_pth, seeded

_SEED = 1800
TINY_MOTION_CHANNELS = (8, 16, 16, 32)
TINY_POINT_MID_DIM = 8


def _randomised():
    from ..models.controlnet import ControlNetDims, HybridControlNet

    net = HybridControlNet(TINY_UNET_CONFIG, ControlNetDims(TINY_MOTION_CHANNELS, TINY_DIFT_CHANNELS, TINY_POINT_MID_DIM))
    with torch.no_grad():
        for param in net.parameters():
            std = param[0].numel() ** -0.5 if param.ndim > 1 else 0.1
            param.normal_(0.0, std)
    return net


def write_tiny_models(models_dir: Path) -> list[Path]:
    return save_pth(seeded(_SEED, _randomised).state_dict(), "dispose", models_dir)
