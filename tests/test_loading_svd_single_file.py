"""Single-file SVD xt (SGM layout, ComfyUI's ``svd_xt_1_1.safetensors``) against the diffusers folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from resources import MANIFESTS
from dispose_core.errors import CheckpointKeyError, ModelFileError
from dispose_core.loading.layout import BY_KEY, SVD_SINGLE_FILE
from dispose_core.loading.mimicmotion import load_mimicmotion_parts
from dispose_core.loading.sgm_keys import CLIP_PREFIX, VAE_PREFIX, clip_key_map, vae_key_map
from dispose_core.loading.svd import meta_image_encoder, meta_vae, shapes
from dispose_core.loading.svd_single_file import (
    SVD_XT_IMAGE_ENCODER_CONFIG,
    SVD_XT_UNET_CONFIG,
    SVD_XT_VAE_CONFIG,
    read_svd_single_file,
)


@pytest.fixture(scope="module")
def both(tiny_models_dir):
    mm = BY_KEY["mimicmotion"].path_in(tiny_models_dir)
    folder = load_mimicmotion_parts(BY_KEY["svd"].path_in(tiny_models_dir), mm)
    single = load_mimicmotion_parts(SVD_SINGLE_FILE.path_in(tiny_models_dir), mm)
    return folder, single


def _file_keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def test_single_file_gives_the_folders_weights(both):
    folder, single = both
    for a, b in ((folder.vae, single.vae), (folder.image_encoder.model, single.image_encoder.model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (single.image_encoder.size, single.image_encoder.mean) == ((224, 224), (0.48145466, 0.4578275, 0.40821073))


def test_single_file_gives_the_folders_outputs(both):
    folder, single = both
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    pixels = torch.randn(1, 3, 224, 224, generator=g)
    with torch.no_grad():
        outs = [(p.vae.encode(image).latent_dist.mode(), p.image_encoder.model(pixel_values=pixels).image_embeds)
                for p in (folder, single)]
        latent = outs[0][0]
        decoded = [p.vae.decode(latent.expand(3, -1, -1, -1), num_frames=3).sample for p in (folder, single)]
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert torch.equal(decoded[0], decoded[1])


def test_report_counts_what_was_read_and_ignored(tiny_models_dir):
    path = SVD_SINGLE_FILE.path_in(tiny_models_dir)
    keys = _file_keys(path)
    report = read_svd_single_file(path).report
    assert report.vae_tensors == sum(k.startswith("first_stage_model.") for k in keys)
    assert report.image_encoder_tensors == sum(k.startswith(CLIP_PREFIX) for k in keys)
    assert report.ignored["model.diffusion_model."] == sum(k.startswith("model.diffusion_model.") for k in keys) > 0
    assert "ignored: " in str(report) and "under model.diffusion_model.*" in str(report)


def _rewrite(src: Path, dst: Path, drop: tuple[str, ...] = (), add: dict | None = None, keep_meta: bool = True) -> Path:
    state = {k: v for k, v in load_file(str(src)).items() if not k.startswith(drop)}
    state.update(add or {})
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    save_file(state, str(dst), metadata=meta if keep_meta else None)
    return dst


def _single_parts(tiny_models_dir, path):
    return load_mimicmotion_parts(path, BY_KEY["mimicmotion"].path_in(tiny_models_dir))


def test_missing_vae_tensor_is_named(tiny_models_dir, tmp_path):
    src = SVD_SINGLE_FILE.path_in(tiny_models_dir)
    bad = _rewrite(src, tmp_path / "svd.safetensors", drop=("first_stage_model.decoder.mid.block_2.time_stack.",))
    with pytest.raises(CheckpointKeyError,
                       match=r"8 missing keys: first_stage_model\.decoder\.mid\.block_2\.time_stack"):
        _single_parts(tiny_models_dir, bad)


def test_unknown_keys_are_listed(tiny_models_dir, tmp_path):
    src = SVD_SINGLE_FILE.path_in(tiny_models_dir)
    bad = _rewrite(src, tmp_path / "svd.safetensors", add={"lora_unet_x.alpha": torch.ones(1)})
    with pytest.raises(CheckpointKeyError, match=r"1 keys outside .*: lora_unet_x\.alpha"):
        read_svd_single_file(bad)
    extra = _rewrite(src, tmp_path / "svd2.safetensors", add={"first_stage_model.decoder.extra.weight": torch.ones(1)})
    with pytest.raises(CheckpointKeyError, match=r"1 unexpected keys: first_stage_model\.decoder\.extra\.weight"):
        _single_parts(tiny_models_dir, extra)


def test_sd15_checkpoint_is_named(tmp_path):
    path = tmp_path / "v1-5-pruned-emaonly.safetensors"
    save_file({"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.zeros(1, 77),
               "first_stage_model.encoder.conv_in.weight": torch.zeros(1),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, str(path))
    with pytest.raises(ModelFileError, match=r"'v1-5-pruned-emaonly.safetensors' is a Stable Diffusion 1\.x checkpoint"
                                             r".*svd_xt_1_1\.safetensors"):
        read_svd_single_file(path)


def test_image_decoder_variant_and_sv3d_are_named(tiny_models_dir, tmp_path):
    src = SVD_SINGLE_FILE.path_in(tiny_models_dir)
    frame_wise = _rewrite(src, tmp_path / "svd_image_decoder.safetensors",
                          drop=("first_stage_model.decoder.conv_out.time_mix_conv.",))
    with pytest.raises(ModelFileError, match="frame-wise image decoder"):
        read_svd_single_file(frame_wise)
    no_encoder = _rewrite(src, tmp_path / "sv3d_u.safetensors", drop=("first_stage_model.encoder.",))
    with pytest.raises(ModelFileError, match="without a VAE encoder"):
        read_svd_single_file(no_encoder)


def test_not_safetensors_or_not_a_checkpoint(tmp_path):
    (tmp_path / "svd.ckpt").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="not a .safetensors file"):
        read_svd_single_file(tmp_path / "svd.ckpt")
    (tmp_path / "broken.safetensors").write_bytes(b"not a header")
    with pytest.raises(ModelFileError, match="cannot read"):
        read_svd_single_file(tmp_path / "broken.safetensors")
    with pytest.raises(ModelFileError, match="file not found: 'gone.safetensors'"):
        read_svd_single_file(tmp_path / "gone.safetensors")


def test_real_configs_match_the_manifests():
    manifest = json.loads((MANIFESTS / "dispose_controlnet.json").read_text())
    assert {k: v for k, v in SVD_XT_UNET_CONFIG.items() if not k.startswith("_")} == manifest["unet_config_used"]
    optional = json.loads((MANIFESTS / "mimicmotion.json").read_text())["optional_keys"]
    ours = {f"vae.{k}": list(v) for k, v in shapes(meta_vae(SVD_XT_VAE_CONFIG)).items()}
    ours |= {f"image_encoder.{k}": list(v) for k, v in shapes(meta_image_encoder(SVD_XT_IMAGE_ENCODER_CONFIG)).items()}
    assert ours == {k: list(v["shape"]) for k, v in optional.items()}


def test_real_architecture_maps_to_open_clip_vit_h_names():
    """OpenCLIP ViT-H/14 (width 1280, 32 blocks, 16x16 patches of 14 px + class token, embed 1024)."""
    clip = clip_key_map(shapes(meta_image_encoder(SVD_XT_IMAGE_ENCODER_CONFIG)))
    sgm = set(clip.values())
    assert len(sgm) == 4 + 2 + 2 + 32 * 12  # class/pos/conv1/proj, ln_pre, ln_post, 12 tensors per block
    assert {CLIP_PREFIX + n for n in ("proj", "class_embedding", "positional_embedding", "conv1.weight",
                                      "transformer.resblocks.31.attn.in_proj_weight", "ln_post.bias")} <= sgm
    vae = vae_key_map(shapes(meta_vae(SVD_XT_VAE_CONFIG)))
    assert VAE_PREFIX + "decoder.up.3.block.2.time_stack.out_layers.3.weight" in vae.values()
    up = "decoder.up_blocks.0.resnets.0.spatial_res_block.conv1.weight"
    assert vae[up] == VAE_PREFIX + "decoder.up.3.block.0.conv1.weight"  # SGM counts decoder levels upwards
    shortcut = "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"
    assert vae[shortcut] == VAE_PREFIX + "encoder.down.1.block.0.nin_shortcut.weight"
