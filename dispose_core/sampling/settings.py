"""The MimicMotion sampler's settings: one type, read by the nodes, the CLI and the sampler."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerSettings:
    """MimicMotion sampler settings; defaults are the official run's (configs/test.yaml,
    inference_ctrl.py). ``seed`` seeds the initial noise (see ``conditioning.draw_noise``)."""

    seed: int = 42
    steps: int = 25
    min_guidance: float = 2.0
    max_guidance: float = 2.0
    noise_aug: float = 0.0
    fps: int = 7
    motion_bucket_id: int = 127
    tile_size: int = 16
    overlap: int = 6
    decode_chunk_size: int = 8

    @property
    def cfg(self) -> bool:
        """CFG runs when some frame's guidance exceeds 1 (see ``sampler.sample_video``)."""
        return max(self.min_guidance, self.max_guidance) > 1.0
