"""Working memory the sampler's phases ask the host to keep free besides the weights (ComfyUI's
``memory_required``): one tile call's, measured; the VAE's, ComfyUI's own estimate.

A tile call runs the DisPose ControlNet and then the MimicMotion UNet on the CFG batch (2 x tile
frames, or 1 x without CFG) at latent size H/8 x W/8. Its peak activation memory was measured by
``python3 bench/bench_memory.py`` (2026-12-02, CPU, bfloat16, the real SVD-xt UNet and DisPose
ControlNet widths, 4 sizes from 4x64x64 to 8x128x128 frames x pixels, a least-squares line through
the peaks of a warm call): 56.4 MiB + 7694 B per latent pixel of the CFG batch, i.e. 3847 B per
latent pixel per byte of the compute dtype; the four sizes lie within 3 % of that line (per-pixel
ratios after the constant 0.97-1.00; an earlier run gave 3852 B). The constant is per call, mostly
the CPU backend's weight reorders; it is kept as a margin. ComfyUI's generic estimate for two
diffusion models (``BaseModel.memory_required``) is 5.45x the measured slope.
Not measured: GPU kernels (SDPA attention runs in linear memory there too; cuDNN workspaces come
on top), fp16 (taken as bf16: same element size), plain MimicMotion without the ControlNet (less).
"""
from __future__ import annotations

import torch

BYTES_PER_LATENT_PIXEL_PER_DTYPE_BYTE = 3847  # bench/bench_memory.py, 2026-12-02 (see above)
CALL_OVERHEAD_BYTES = int(56.4 * 2**20)
LATENT_SCALE = 8


def tile_activation_bytes(height: int, width: int, tile_size: int, dtype: torch.dtype, *, cfg: bool = True) -> int:
    """Bytes of activations of one ControlNet + UNet tile call at ``height`` x ``width`` pixels.

    ``dtype`` is the compute dtype (fp8-stored weights compute in fp16/bf16: pass that one).
    """
    pixels = (2 if cfg else 1) * tile_size * (height // LATENT_SCALE) * (width // LATENT_SCALE)
    element = torch.empty(0, dtype=dtype).element_size()
    return CALL_OVERHEAD_BYTES + BYTES_PER_LATENT_PIXEL_PER_DTYPE_BYTE * pixels * element


# ComfyUI's working-memory estimates for an SD-family KL VAE (comfy/sd.py, VAE.memory_used_encode /
# memory_used_decode; its comment says they are on the high side): bytes per pixel per dtype byte
# for encoding, per latent pixel for decoding. Not measured here; the sampler frees this much for our VAE.
VAE_ENCODE_BYTES_PER_PIXEL = 1767
VAE_DECODE_BYTES_PER_LATENT_PIXEL = 2178 * 64


def vae_activation_bytes(frames: int, height: int, width: int, dtype: torch.dtype, *, decode: bool) -> int:
    """ComfyUI's estimate of the VAE's activations for ``frames`` images of ``height`` x ``width`` pixels."""
    size = torch.empty(0, dtype=dtype).element_size()
    if decode:
        return frames * (height // LATENT_SCALE) * (width // LATENT_SCALE) * VAE_DECODE_BYTES_PER_LATENT_PIXEL * size
    return frames * height * width * VAE_ENCODE_BYTES_PER_PIXEL * size
