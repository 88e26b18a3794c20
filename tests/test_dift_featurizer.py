"""DIFT featurizer: golden M4 (official SDFeaturizer.forward), determinism, chunking, errors."""
from __future__ import annotations

import functools

import pytest
import torch
from golden import first_case, golden_params, rel_l2, require

from dispose_core.dift.featurizer import DiftFeaturizer, ddim_alphas_cumprod, extract_features
from dispose_core.errors import InputError
from dispose_core.loading.sd15 import build_text_encoder, build_unet, build_vae_encoder, encode_prompt


@functools.cache
def _golden_featurizer(name: str) -> tuple[DiftFeaturizer, dict]:
    """Our featurizer built from the case's configs and weight files (strict loads)."""
    case = require(name)
    built = {}
    builders = {"dift_sd_unet": build_unet, "dift_sd_vae_encoder": build_vae_encoder,
                "dift_sd_text_encoder": build_text_encoder}
    configs = {"dift_sd_unet": case.sidecar["config"]["unet"], "dift_sd_vae_encoder": case.sidecar["config"]["vae"],
               "dift_sd_text_encoder": case.sidecar["config"]["text_encoder"]}
    for entry in case.sidecar["files"]["weights"]:
        module = entry["module"]
        built[module] = builders[module](configs[module], case.weights(entry["file"]), file=entry["file"])
    text = built["dift_sd_text_encoder"]
    embeds = {name: encode_prompt(text, case.tensors[f"in.{name}_input_ids"]) for name in ("prompt", "null_prompt")}
    sched = case.sidecar["config"]["scheduler"]
    alphas = ddim_alphas_cumprod(sched["beta_start"], sched["beta_end"], sched["beta_schedule"],
                                 sched["num_train_timesteps"])
    featurizer = DiftFeaturizer(built["dift_sd_unet"], built["dift_sd_vae_encoder"],
                                embeds["prompt"], embeds["null_prompt"], alphas)
    return featurizer, embeds


@golden_params("M4")
def test_golden_dift_featurizer(golden_name):
    case = require(golden_name)
    cfg, tol = case.sidecar["config"], case.sidecar["tolerance"]["recommended"]
    featurizer, embeds = _golden_featurizer(golden_name)
    for name in ("prompt", "null_prompt"):
        assert rel_l2(embeds[name], case.tensors[f"aux.{name}_embeds"]) < tol, name

    checks = case.sidecar["checks"]
    for t in cfg["t"]:
        if f"alphas_cumprod[{t}]" in checks:
            assert float(featurizer.alphas_cumprod[t]) == pytest.approx(checks[f"alphas_cumprod[{t}]"], rel=1e-6)

    passes = range(1, len(cfg["t"]) + 1)
    draws = [(case.tensors[f"rand.vae_eps.pass{p}"], case.tensors[f"rand.noise.pass{p}"]) for p in passes]
    mean, std = featurizer.posterior(case.tensors["in.image"])
    for p, t, (eps, noise) in zip(passes, cfg["t"], draws):
        latents = featurizer.noisy_latents(mean, std, t, eps, noise)
        assert rel_l2(latents, case.tensors[f"aux.noisy_latents.pass{p}"]) < tol

    feats = extract_features(featurizer, case.tensors["in.image"], timesteps=cfg["t"], up_ft_index=cfg["up_ft_index"],
                             ensemble_size=cfg["ensemble_size"], draws=draws)
    for p, feat in zip(passes, feats):
        expected = case.tensors[f"out.dift_feat_{p}"]
        assert feat.shape == expected.shape
        err = rel_l2(feat, expected)
        print(f"M4 pass {p}: rel L2 {err:.2e} (tolerance {tol:.0e})")
        assert err < tol
    # Chunking the ensemble (memory) must not change the result.
    chunked = extract_features(featurizer, case.tensors["in.image"], timesteps=cfg["t"],
                               up_ft_index=cfg["up_ft_index"], ensemble_size=cfg["ensemble_size"], draws=draws,
                               ensemble_chunk=1)
    for a, b in zip(feats, chunked):
        assert rel_l2(b, a) < 1e-6


def _m4_featurizer():
    case = first_case("M4")
    return _golden_featurizer(case.name)[0], case.tensors["in.image"]


@pytest.mark.golden
def test_seeded_generator_is_deterministic_and_default_is_feature_one():
    featurizer, image = _m4_featurizer()
    calls = []
    a = extract_features(featurizer, image, ensemble_size=3, generator=torch.Generator().manual_seed(7),
                         progress=lambda d, t: calls.append((d, t)))
    b = extract_features(featurizer, image, ensemble_size=3, generator=torch.Generator().manual_seed(7),
                         ensemble_chunk=2)
    c = extract_features(featurizer, image, ensemble_size=3, generator=torch.Generator().manual_seed(8))
    assert len(a) == 1 and a[0].shape == (1, featurizer.up_block_channels(1), image.shape[2] // 16, image.shape[3] // 16)
    assert rel_l2(b[0], a[0]) < 1e-6
    assert rel_l2(c[0], a[0]) > 1e-3
    assert calls == [(1, 1)]


@pytest.mark.golden
def test_should_stop_interrupts_and_bad_input_is_clear():
    featurizer, image = _m4_featurizer()
    with pytest.raises(InterruptedError):
        extract_features(featurizer, image, ensemble_size=2, should_stop=lambda: True)
    with pytest.raises(InputError, match="multiple of 8"):
        extract_features(featurizer, image[..., :60], ensemble_size=2)
    with pytest.raises(InputError, match="one RGB image"):
        extract_features(featurizer, image.repeat(2, 1, 1, 1), ensemble_size=2)
    with pytest.raises(InputError, match="one up-block index per timestep"):
        extract_features(featurizer, image, timesteps=(261, 0), up_ft_index=(1,))


@pytest.mark.golden
@pytest.mark.parametrize("latent_hw", [(8, 16), (9, 13)])
def test_truncated_unet_equals_diffusers_forward(latent_hw):
    """Our early-stopping UNet pass gives diffusers' own up-block output, also for odd latent sizes."""
    featurizer, _ = _m4_featurizer()
    unet = featurizer.unet
    torch.manual_seed(0)
    latents = torch.randn(2, unet.config.in_channels, *latent_hw)
    context = featurizer.prompt_embeds
    for index in (1, 2):
        seen = {}
        hook = unet.up_blocks[index].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
        with torch.no_grad():
            unet(latents, 261, encoder_hidden_states=context.expand(2, -1, -1))
        hook.remove()
        ours = featurizer.up_features(latents, 261, context, index)
        assert ours.shape == seen["out"].shape
        assert rel_l2(ours, seen["out"]) < 1e-6
