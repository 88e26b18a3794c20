"""Sampler building blocks against the M5 golden case's recorded intermediates.

Each piece (schedule, tiles, guidance, CLIP preprocessing, VAE conditioning, generator draws,
the fused/guided Euler loop, chunked decoding) is checked on its own, so a failure of the
end-to-end case can be localised. Every size and setting comes from the sidecar.
"""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLTemporalDecoder
from golden import golden_params, rel_l2, require
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from dispose_core.sampling.conditioning import (
    added_time_ids,
    antialiased_resize,
    clip_pixels,
    draw_noise,
    frame_guidance,
    image_embedding,
    periodic_initial_latents,
    reference_latent,
)
from dispose_core.sampling.decode import decoded_chunks, to_images
from dispose_core.sampling.euler import sample_euler
from dispose_core.sampling.sampler import Ticker, decode_video
from dispose_core.sampling.guided import GuidedVideoModel, VideoConditions
from dispose_core.sampling.schedule import init_noise_sigma, karras_sigmas, scale_input, timestep
from dispose_core.sampling.video_model import TILES, MimicMotionVideoModel
from dispose_core.sampling.tiling import tile_indices, tile_weights



def M5(test):
    """Golden test over every M5 case."""
    return golden_params("M5")(test)


def _tol(case, key: str = "aux.* per-call tensors") -> float:
    return case.sidecar["tolerance"]["recommended"][key]


def _kw(case) -> dict:
    return case.sidecar["call_kwargs"]


def _reference01(case) -> torch.Tensor:
    return (case.tensors["in.ref_image_uint8"].float() / 255).permute(2, 0, 1)[None]


def _vae(case) -> AutoencoderKLTemporalDecoder:
    vae = AutoencoderKLTemporalDecoder(**case.sidecar["config"]["vae"]).eval()
    vae.load_state_dict(case.weights(_weight_file(case, "vae")), strict=True)
    return vae


def _weight_file(case, role: str) -> str:
    return next(w["file"] for w in case.sidecar["files"]["weights"] if w["role"] == role)


@M5
def test_schedule_matches_golden(golden_name):
    case = require(golden_name)
    sigmas = karras_sigmas(_kw(case)["num_inference_steps"])
    assert torch.equal(sigmas, case.tensors["aux.sigmas"])
    assert torch.equal(timestep(sigmas[:-1]), case.tensors["aux.timesteps"])
    assert init_noise_sigma(sigmas[0]).item() == pytest.approx(case.sidecar["checks"]["init_noise_sigma"], rel=1e-7)


@M5
def test_tiles_weights_guidance_time_ids_match_golden(golden_name):
    case = require(golden_name)
    kw = _kw(case)
    tiles = tile_indices(kw["num_frames"], kw["tile_size"], kw["tile_overlap"])
    assert torch.equal(tiles, case.tensors["aux.tile_indices"])
    assert torch.equal(tile_weights(kw["tile_size"]), case.tensors["aux.tile_weight"])
    g = frame_guidance(kw["min_guidance_scale"], kw["max_guidance_scale"], kw["num_frames"])
    assert torch.equal(g, case.tensors["aux.guidance_scale"])
    ids = added_time_ids(kw["fps"], kw["motion_bucket_id"], kw["noise_aug_strength"])
    assert torch.equal(ids.expand(2, -1), case.tensors["aux.added_time_ids"])


@pytest.mark.parametrize("frames,tile,overlap,expected_tiles", [
    (16, 16, 6, 1), (17, 16, 6, 2), (73, 16, 6, 7), (9, 4, 2, 4), (5, 2, 1, 4),
])
def test_tiles_cover_every_frame_with_reference_first(frames, tile, overlap, expected_tiles):
    tiles = tile_indices(frames, tile, overlap)
    assert tiles.shape == (expected_tiles, tile)
    assert (tiles[:, 0] == 0).all()
    assert set(tiles.flatten().tolist()) == set(range(frames))
    assert tiles[-1, -1] == frames - 1
    # frames after the reference are consecutive inside a tile
    assert (tiles[:, 2:] - tiles[:, 1:-1] == 1).all()


def test_tile_weights_symmetric_triangular():
    w = tile_weights(16)
    assert torch.allclose(w, w.flip(0))
    assert w[0] == pytest.approx(1 / 16) and w.max() == pytest.approx(1 - 1 / 16)
    assert (w[1:8] > w[:7]).all()


@M5
def test_generator_draw_order_matches_golden(golden_name):
    case = require(golden_name)
    kw = _kw(case)
    draws = draw_noise(torch.Generator().manual_seed(kw["generator_seed"]), kw["height"], kw["width"],
                       kw["tile_size"])
    assert torch.equal(draws.noise_aug, case.tensors["rand.noise_aug"])
    assert torch.equal(draws.init, case.tensors["rand.init_latents"])
    sigma = init_noise_sigma(karras_sigmas(kw["num_inference_steps"])[0])
    latents = periodic_initial_latents(draws.init, kw["num_frames"], sigma)
    assert rel_l2(latents, case.tensors["aux.step0.latents_in"]) == 0.0


@M5
def test_clip_embedding_matches_golden(golden_name):
    case = require(golden_name)
    fe = case.sidecar["config"]["feature_extractor"]
    pixels = clip_pixels(_reference01(case), fe["image_mean"], fe["image_std"])
    stats = [pixels.mean(), pixels.std(), pixels.min(), pixels.max()]
    expected = case.sidecar["checks"]["clip_pixel_values_stats(mean,std,min,max)"]
    assert [s.item() for s in stats] == pytest.approx(expected, rel=1e-5)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**case.sidecar["config"]["image_encoder"])).eval()
    encoder.load_state_dict(case.weights(_weight_file(case, "image_encoder")), strict=True)
    emb = image_embedding(encoder, pixels)
    assert emb.shape[:2] == (1, 1)
    assert rel_l2(emb[:, 0], case.tensors["aux.image_embeds"]) < _tol(case)


def test_antialiased_resize_is_identity_on_constant_and_blurs_downscale():
    flat = torch.full((1, 3, 100, 60), 0.3)
    assert torch.allclose(antialiased_resize(flat, (224, 224)), torch.full((1, 3, 224, 224), 0.3), atol=1e-6)
    checker = (torch.arange(448)[:, None] + torch.arange(448)[None]) % 2
    small = antialiased_resize(checker.float()[None, None], (224, 224))
    # a 2x downscale of a 1-pixel checkerboard must come out nearly flat (no aliasing)
    assert small.std() < 0.1 and small.mean().item() == pytest.approx(0.5, abs=0.02)


@M5
def test_vae_condition_matches_golden(golden_name):
    case = require(golden_name)
    kw = _kw(case)
    image = _reference01(case) * 2 - 1 + kw["noise_aug_strength"] * case.tensors["rand.noise_aug"]
    assert rel_l2(image, case.tensors["aux.vae_encoder_input"]) < 1e-7
    latent = reference_latent(_vae(case), image)
    assert rel_l2(latent, case.tensors["aux.image_latents"]) < _tol(case)


class _RecordedUNet(torch.nn.Module):
    """Returns the official run's recorded UNet output of each call in turn and keeps its inputs."""

    def __init__(self, case, tiles_per_step: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # placement: CPU, float32
        self.case, self.tiles_per_step, self.seen = case, tiles_per_step, []

    def forward(self, x, t, context, time_ids, **_):
        step, number = divmod(len(self.seen), self.tiles_per_step)
        self.seen.append((step, number, x))
        return self.case.tensors[f"aux.unet_out.s{step}.t{number}"]


@M5
def test_fused_guided_euler_loop_matches_golden(golden_name):
    """Inject the recorded UNet outputs into the video model: its tile fusion, the per-frame
    guidance and the Euler sampler must reproduce the recorded latents, and the UNet must get the
    recorded inputs."""
    case = require(golden_name)
    kw, t = _kw(case), case.tensors
    sigmas = karras_sigmas(kw["num_inference_steps"])
    frames = kw["num_frames"]
    num_tiles = tile_indices(frames, kw["tile_size"], kw["tile_overlap"]).shape[0]
    unet = _RecordedUNet(case, num_tiles)
    latent = t["aux.call0.model_input"][:, 0, 4:]  # the reference latent of both halves (uncond zeros)
    conditions = VideoConditions(torch.zeros(2, 1, 8), latent, torch.zeros(2, 3), [None, None])
    model = GuidedVideoModel(MimicMotionVideoModel(unet, torch.nn.Identity()), conditions,
                             frame_guidance(kw["min_guidance_scale"], kw["max_guidance_scale"], frames),
                             {TILES: (kw["tile_size"], kw["tile_overlap"]), "sample_sigmas": sigmas})
    out = sample_euler(model, t["aux.step0.latents_in"][0], sigmas)
    assert len(unet.seen) == case.sidecar["checks"]["num_unet_calls"]
    model_input = t["aux.call0.model_input"]
    assert rel_l2(unet.seen[0][2], model_input) < 1e-7
    for step in range(1, len(sigmas) - 1):  # each step starts from the recorded previous result
        first = next(s for s in unet.seen if s[0] == step and s[1] == 0)
        idx = tile_indices(frames, kw["tile_size"], kw["tile_overlap"])[0]
        prev = scale_input(t[f"aux.step{step - 1}.latents_out"], sigmas[step])[:, idx]
        assert rel_l2(first[2][1:, :, :4], prev) < _tol(case)
    assert rel_l2(out[None], t["out.latents"]) < _tol(case, "out.latents")


@M5
def test_chunked_decode_matches_golden(golden_name):
    case = require(golden_name)
    latents = case.tensors["out.latents"][0]
    calls = []
    decoded = torch.cat(list(decoded_chunks(_vae(case), latents, _kw(case)["decode_chunk_size"],
                                            lambda: calls.append(1))))
    expected = case.tensors["out.decoded_raw"][0].permute(1, 0, 2, 3)
    assert rel_l2(decoded, expected) < _tol(case, "out.decoded_raw")
    chunk = _kw(case)["decode_chunk_size"]
    assert len(calls) == -(-latents.shape[0] // chunk)
    images = to_images(decoded)
    assert images.shape == (latents.shape[0], *expected.shape[-2:], 3)
    assert images.min() >= 0 and images.max() <= 1


@M5
@pytest.mark.parametrize("skip", [0, 1])
def test_decoded_images_match_golden_without_the_skipped_frames(golden_name, skip):
    """The chunk-by-chunk IMAGE (what the sampler returns) is the golden decode in ComfyUI's
    layout, (x / 2 + 0.5) clamped to [0, 1], the first ``skip`` frames (the reference) left out."""
    case = require(golden_name)
    latents = case.tensors["out.latents"][0]
    calls = []
    images = decode_video(_vae(case), latents, _kw(case)["decode_chunk_size"], keep_reference_frame=skip == 0,
                          ticker=Ticker(0, lambda done, total: calls.append(done)))
    expected = (case.tensors["out.decoded_raw"][0].permute(1, 2, 3, 0)[skip:] / 2 + 0.5).clamp(0, 1)
    assert images.shape == expected.shape and images.is_contiguous()
    assert rel_l2(images, expected) < _tol(case, "out.decoded_raw")
    assert len(calls) == -(-latents.shape[0] // _kw(case)["decode_chunk_size"])
