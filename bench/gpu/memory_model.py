"""VRAM estimate per sampler phase: the weights the phase loads plus the ``memory_required`` the
MimicMotion Sampler passes to ComfyUI for it (same functions: ``tile_activation_bytes`` for sampling,
``vae_memory`` for encoding and decoding), so a GPU run's measured/estimated ratio checks that code."""
from __future__ import annotations

from typing import Callable

import torch

from dispose_core.models.cast_layers import compute_placement, weight_bytes
from dispose_core.sampling.memory import tile_activation_bytes

VaeMemory = Callable[..., int]  # nodes/comfy_bridge.vae_memory (needs ComfyUI importable)


def phase_estimates(units, controlnet: torch.nn.Module | None, *, height: int, width: int, tile: int,
                    decode_chunk: int, cfg: bool, vae_memory: VaeMemory) -> dict[str, int]:
    """Bytes each phase should need on the GPU: weights + the node's ``memory_required``.

    ``units``: the MimicMotion Loader's output (ComfyUI-managed ``.modules``); ``controlnet``: DisPose's or None.
    """
    vae, encoder, denoiser = units.vae.modules, units.image_encoder.modules, units.denoiser.modules
    vae_dtype = compute_placement(vae)[1]
    compute = compute_placement(units.denoiser.value.unet)[1]
    sample_weights = weight_bytes(denoiser) + (weight_bytes(controlnet) if controlnet is not None else 0)
    return {
        "encode": weight_bytes(encoder) + weight_bytes(vae) + vae_memory(1, height, width, vae_dtype, decode=False),
        "sample": sample_weights + tile_activation_bytes(height, width, tile, compute, cfg=cfg),
        "decode": weight_bytes(vae) + vae_memory(decode_chunk, height, width, vae_dtype, decode=True),
    }
