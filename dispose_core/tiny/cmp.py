"""Tiny CMP checkpoint in the real container: ``cmp/ckpt_iter_42000.pth.tar``.

Same layout as the real file (``torch.save`` of ``{"state_dict": {"module." + name: tensor},
"step": 42000}``, every real key name, BatchNorm statistics included) with narrow widths, so the
real loader infers the tiny config from the shapes and the whole CMP path runs in tests. The
block counts stay real, so the key set is exactly the real one (455 keys).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..motion.cmp import PREFIX, CMPConfig, CMPModel
from .svd import save_pth, seeded

TINY_CMP = CMPConfig(
    stem=8, planes=(4, 4, 8, 8), image_dim=8, sparse_hidden=4, sparse_dim=4,
    branch=8, fusion8=8, skip4=4, fusion4=8, skip2=4, fusion2=8,
)
_SEED = 42000


def tiny_cmp_state_dict(config: CMPConfig = TINY_CMP, seed: int = _SEED) -> dict[str, torch.Tensor]:
    """Deterministic random weights (and non-trivial BN statistics) for ``config``."""
    def build() -> CMPModel:
        model = CMPModel(config)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        return model

    model = seeded(seed, build)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_tiny_models(models_dir: Path) -> list[Path]:
    """Write the tiny CMP checkpoint under ``models_dir`` (ComfyUI ``models`` layout)."""
    state = {PREFIX + k: v for k, v in tiny_cmp_state_dict().items()}
    return save_pth({"state_dict": state, "step": 42000}, "cmp", models_dir)
