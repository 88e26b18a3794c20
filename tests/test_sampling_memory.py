"""The tile working-memory estimate: the measured coefficient applied to the CFG batch's latent pixels."""
from __future__ import annotations

import torch

from dispose_core.sampling.memory import tile_activation_bytes


def test_estimate_at_the_official_size():
    # 576x1024, tile 16, CFG: 2 x 16 x 72 x 128 latent pixels x 3847 B x 2 (fp16) + 56.4 MiB
    expected = 2 * 16 * 72 * 128 * 3847 * 2 + int(56.4 * 2**20)
    assert tile_activation_bytes(576, 1024, 16, torch.float16) == expected
    assert 2.3e9 < expected < 2.4e9


def test_estimate_scales_with_tile_dtype_and_cfg():
    base = tile_activation_bytes(576, 1024, 8, torch.bfloat16)
    overhead = tile_activation_bytes(8, 8, 0, torch.bfloat16)
    assert tile_activation_bytes(576, 1024, 16, torch.bfloat16) - overhead == 2 * (base - overhead)
    assert tile_activation_bytes(576, 1024, 8, torch.float32) - overhead == 2 * (base - overhead)
    assert tile_activation_bytes(576, 1024, 8, torch.bfloat16, cfg=False) - overhead == (base - overhead) // 2
