"""Chunked temporal VAE decoding of the denoised latents into frames, one chunk at a time."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..interrupt import ShouldStop, stop_between_layers
from ..models.cast_layers import compute_placement


@torch.no_grad()
def decoded_chunks(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int,
                   on_chunk: Callable[[], None] | None = None,
                   should_stop: ShouldStop | None = None) -> Iterator[torch.Tensor]:
    """(F,4,h,w) latents -> (n,3,H,W) float32 raw decoder output (about [-1,1]) on the CPU, one
    chunk of ``chunk_size`` frames per item, decoded when asked for.

    SVD's temporal decoder mixes the frames of one call, so the result depends on ``chunk_size``
    (kept as the official pipeline: consecutive chunks, ``num_frames`` = chunk length). Yielding
    chunks lets a caller put each one into its final form (an IMAGE slice, a video file) so a
    long video never exists twice in float32; each chunk goes to the CPU (frames of a long video
    would not fit beside the models on a GPU).
    ``on_chunk`` runs after every chunk (progress); ``should_stop`` before every layer of the
    decoder (a chunk takes seconds on a CPU), see ``interrupt.stop_between_layers``.
    """
    scaling = vae.config.scaling_factor
    device, dtype = compute_placement(vae)
    for start in range(0, latents.shape[0], chunk_size):
        chunk = (latents[start:start + chunk_size] * (1.0 / scaling)).to(device=device, dtype=dtype)
        with stop_between_layers(should_stop, "Decoding"):
            out = vae.decode(chunk, num_frames=chunk.shape[0]).sample
        del chunk
        out = out.to(device="cpu", dtype=torch.float32)
        if on_chunk is not None:
            on_chunk()
        yield out


def to_images(decoded: torch.Tensor) -> torch.Tensor:
    """(F,3,H,W) decoder output -> (F,H,W,3) float in [0,1] (ComfyUI IMAGE layout)."""
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
