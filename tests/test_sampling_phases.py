"""The sampler in three phases (encode -> sample -> decode), each with only its own models usable."""
from __future__ import annotations

import torch

from dispose_core.loading.layout import BY_KEY, SVD_SINGLE_FILE
from dispose_core.loading.mimicmotion import load_mimicmotion, load_mimicmotion_parts
from dispose_core.sampling.sampler import (
    decode_frames,
    denoise_latents,
    encode_reference,
    plan_sampling,
    sample_video,
)

SETTINGS = dict(seed=7, steps=2, tile_size=3, overlap=1, decode_chunk_size=2, min_guidance=1.5, max_guidance=2.5)


def _inputs():
    g = torch.Generator().manual_seed(11)
    reference = torch.randint(0, 256, (64, 64, 3), generator=g, dtype=torch.uint8)
    poses = torch.randint(0, 256, (4, 64, 64, 3), generator=g, dtype=torch.uint8)
    return reference, poses


def _offload(*modules: torch.nn.Module) -> None:
    """Move weights to the meta device: a phase that used them would fail or return no numbers."""
    for m in modules:
        m.to("meta")


def test_phases_with_other_models_offloaded_equal_the_one_call(tiny_models_dir):
    mm = BY_KEY["mimicmotion"].path_in(tiny_models_dir)
    reference, poses = _inputs()
    expected = sample_video(load_mimicmotion(BY_KEY["svd"].path_in(tiny_models_dir), mm), reference, poses,
                            **SETTINGS)

    parts = load_mimicmotion_parts(SVD_SINGLE_FILE.path_in(tiny_models_dir), mm)
    plan = plan_sampling(reference, poses, **SETTINGS)
    calls = []
    ticker = plan.ticker(lambda done, total: calls.append((done, total)))

    _offload(parts.denoiser.unet, parts.denoiser.pose_net)  # encode: CLIP + VAE only
    parts_for_sampling = load_mimicmotion_parts(SVD_SINGLE_FILE.path_in(tiny_models_dir), mm)
    encoded = encode_reference(plan, parts.image_encoder, parts.vae)
    _offload(parts_for_sampling.image_encoder.model, parts_for_sampling.vae)  # sample: UNet + PoseNet only
    latents = denoise_latents(encoded, parts_for_sampling.denoiser, ticker)
    _offload(parts.image_encoder.model, parts_for_sampling.denoiser.unet, parts_for_sampling.denoiser.pose_net)
    frames = decode_frames(parts.vae, latents, plan, ticker=ticker)  # decode: VAE only

    assert frames.shape == (3, 64, 64, 3)
    assert torch.equal(frames, expected)
    # 2 steps x 2 tiles of 3 frames over 4 frames, then 2 decode chunks of 2 frames, one count
    assert calls == [(i, 6) for i in range(1, 7)]
