"""Chunked temporal VAE decoding of the denoised latents into frames."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..interrupt import ShouldStop, stop_between_layers
from ..models.cast_layers import compute_placement


def _decoded_chunks(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int,
                    on_chunk: Callable[[], None] | None, should_stop: ShouldStop | None) -> Iterator[torch.Tensor]:
    """The raw decoder output of consecutive ``chunk_size``-frame chunks, each as (n,3,H,W) float32 on the CPU.

    SVD's temporal decoder mixes the frames of one call, so the result depends on ``chunk_size``
    (kept as the official pipeline: consecutive chunks, ``num_frames`` = chunk length). Only one
    chunk's activations exist at a time; each decoded chunk goes to the CPU as float32 (frames
    of a long video would not fit beside the models on a GPU).
    ``on_chunk`` runs after every chunk (progress); ``should_stop`` before every layer of the
    decoder (a chunk takes seconds on a CPU), see ``interrupt.stop_between_layers``.
    """
    scaling = vae.config.scaling_factor
    device, dtype = compute_placement(vae)
    for start in range(0, latents.shape[0], chunk_size):
        chunk = (latents[start:start + chunk_size] * (1.0 / scaling)).to(device=device, dtype=dtype)
        with stop_between_layers(should_stop, "Decoding"):
            out = vae.decode(chunk, num_frames=chunk.shape[0]).sample
        yield out.to(device="cpu", dtype=torch.float32)
        if on_chunk is not None:
            on_chunk()


@torch.no_grad()
def decode_latents(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int,
                   on_chunk: Callable[[], None] | None = None,
                   should_stop: ShouldStop | None = None) -> torch.Tensor:
    """(F,4,h,w) latents -> (F,3,H,W) float32 raw decoder output (about [-1,1]) on the CPU;
    chunks and callbacks as in ``_decoded_chunks``."""
    return torch.cat(list(_decoded_chunks(vae, latents, chunk_size, on_chunk, should_stop)))


@torch.no_grad()
def decode_images(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int, *, skip: int = 0,
                  on_chunk: Callable[[], None] | None = None,
                  should_stop: ShouldStop | None = None) -> torch.Tensor:
    """(F,4,h,w) latents -> (F-skip,H,W,3) IMAGE frames (``to_images`` of ``decode_latents``, the
    first ``skip`` frames left out), written chunk by chunk into the result: a long video's frames
    exist once, not as decoded chunks, their concatenation and the IMAGE conversion's copies."""
    images = None
    for index, chunk in enumerate(_decoded_chunks(vae, latents, chunk_size, on_chunk, should_stop)):
        first = index * chunk_size - skip  # where the chunk's first frame goes in the result
        keep = to_images(chunk[max(0, -first):])
        if images is None:
            images = torch.empty((latents.shape[0] - skip, *keep.shape[1:]), dtype=keep.dtype)
        images[max(0, first):max(0, first) + keep.shape[0]] = keep
    return images


def to_images(decoded: torch.Tensor) -> torch.Tensor:
    """(F,3,H,W) decoder output -> (F,H,W,3) float in [0,1] (ComfyUI IMAGE layout)."""
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
