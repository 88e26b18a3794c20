"""SVD / MimicMotion / DisPose loaders on the tiny model files: strictness, errors, dtypes, end to end."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dispose_core.errors import CheckpointKeyError, ModelFileError
from dispose_core.loading.dispose import load_dispose_controlnet
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.mimicmotion import load_mimicmotion
from dispose_core.models.controlnet import HybridControlNet


def _paths(models_dir: Path) -> tuple[Path, Path, Path]:
    return (BY_KEY["svd"].path_in(models_dir), BY_KEY["mimicmotion"].path_in(models_dir),
            BY_KEY["dispose"].path_in(models_dir))


@pytest.fixture(scope="module")
def loaded(tiny_models_dir):
    svd, mm, dp = _paths(tiny_models_dir)
    models = load_mimicmotion(svd, mm)
    net, report = load_dispose_controlnet(dp, models.unet)
    return models, net, report


def test_tiny_files_are_small(tiny_models_dir):
    for path in _paths(tiny_models_dir)[1:]:
        assert path.stat().st_size < 12 * 2**20


def test_loaded_models_run_end_to_end(loaded):
    models, net, report = loaded
    assert isinstance(net, HybridControlNet) and report.from_file == report.total and report.from_unet == 0
    assert models.clip_size == (224, 224) and len(models.clip_mean) == 3
    assert models.scheduler_config["prediction_type"] == "v_prediction"
    emb_dim = net.point_adapter.embedding_channels
    g = torch.Generator().manual_seed(0)
    for h, w in ((128, 64), (64, 192)):
        f = 3
        with torch.no_grad():
            pose = models.pose_net(torch.rand(f, 3, h, w, generator=g) * 2 - 1)
            motion = net.encode_motion(torch.randn(1, f - 1, 2, h, w, generator=g), torch.randn(1, f - 1, 2, h, w, generator=g))
            points = net.encode_points(torch.randn(18, emb_dim, generator=g), torch.rand(f, 18, 2, generator=g),
                                       torch.zeros(f, 18), h, w)
            sample = torch.randn(2, f, 8, h // 8, w // 8, generator=g)
            context = models.image_encoder(torch.randn(1, 3, *models.clip_size, generator=g)).image_embeds[:, None]
            args = (sample, torch.tensor(0.2), torch.cat([context * 0, context]), torch.tensor([[6.0, 127.0, 0.02]] * 2))
            down, mid = net(*args, motion, points)
            out = models.unet(*args, torch.cat([pose * 0, pose]), down, mid)
        assert out.shape == (2, f, 4, h // 8, w // 8) and torch.isfinite(out).all()


def test_dtype_choice(tiny_models_dir):
    svd, mm, dp = _paths(tiny_models_dir)
    models = load_mimicmotion(svd, mm, dtype=torch.bfloat16)
    net, _ = load_dispose_controlnet(dp, models.unet, dtype=torch.bfloat16)
    for module in (models.unet, models.pose_net, models.vae, models.image_encoder, net):
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    with pytest.raises(ModelFileError, match="unsupported dtype"):
        load_mimicmotion(svd, mm, dtype=torch.int8)


def test_missing_files_name_file_and_folder(tiny_models_dir, tmp_path):
    svd, mm, dp = _paths(tiny_models_dir)
    with pytest.raises(ModelFileError, match=r"MimicMotion_1-1\.pth' not found in .*nowhere"):
        load_mimicmotion(svd, tmp_path / "nowhere" / "MimicMotion_1-1.pth")
    with pytest.raises(ModelFileError, match=r"stable-video-diffusion-img2vid-xt-1-1' not found"):
        load_mimicmotion(tmp_path / "stable-video-diffusion-img2vid-xt-1-1", mm)
    with pytest.raises(ModelFileError, match=r"DisPose\.pth' not found"):
        load_dispose_controlnet(tmp_path / "DisPose.pth", None)
    broken = tmp_path / "svd"
    shutil.copytree(svd, broken)
    (broken / "vae" / "config.json").unlink()
    with pytest.raises(ModelFileError, match=r"file not found: 'config.json' in folder '.*svd/vae'"):
        load_mimicmotion(broken, mm)
    (broken / "vae" / "config.json").write_text((svd / "vae" / "config.json").read_text())
    (broken / "image_encoder" / "model.fp16.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"no weight file in folder '.*image_encoder'"):
        load_mimicmotion(broken, mm)


def test_mimicmotion_checkpoint_keys_are_strict(tiny_models_dir, tmp_path):
    svd, mm, _ = _paths(tiny_models_dir)
    state = torch.load(mm, weights_only=True)
    bad = tmp_path / "MimicMotion_1-1.pth"
    torch.save({k: v for k, v in state.items() if k != "unet.conv_in.bias"}, bad)
    with pytest.raises(CheckpointKeyError, match=r"1 missing keys: conv_in.bias"):
        load_mimicmotion(svd, bad)
    torch.save({**state, "module.extra": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointKeyError, match=r"1 unexpected keys .*module.extra"):
        load_mimicmotion(svd, bad)
    override = torch.full_like(state["pose_net.scale"], 3.0)
    vae_key = "vae.decoder.conv_out.bias"
    models = load_mimicmotion(svd, mm)
    torch.save({**state, vae_key: torch.ones_like(models.vae.decoder.conv_out.bias), "pose_net.scale": override}, bad)
    overridden = load_mimicmotion(svd, bad)
    assert torch.equal(overridden.vae.decoder.conv_out.bias, torch.ones_like(models.vae.decoder.conv_out.bias))
    assert torch.equal(overridden.vae.encoder.conv_in.weight, models.vae.encoder.conv_in.weight)
    assert torch.equal(overridden.pose_net.scale, override)


def test_dispose_checkpoint_fallback_and_errors(loaded, tiny_models_dir, tmp_path):
    models, _, _ = loaded
    _, _, dp = _paths(tiny_models_dir)
    state = torch.load(dp, weights_only=True)
    partial = tmp_path / "DisPose.pth"
    kept = {k: v for k, v in state.items() if not k.startswith(("down_blocks.", "conv_in."))}
    torch.save(kept, partial)
    net, report = load_dispose_controlnet(partial, models.unet)
    assert report.from_unet == len(state) - len(kept) and report.from_file == len(kept)
    assert "copied from the MimicMotion UNet" in str(report)
    unet_state, net_state = models.unet.state_dict(), net.state_dict()
    assert all(torch.equal(net_state[k], unet_state[k]) for k in state if k not in kept)
    assert torch.equal(net_state["add_embedding.linear_1.weight"], state["add_embedding.linear_1.weight"])

    torch.save({k: v for k, v in state.items() if not k.startswith("point_adapter.")}, partial)
    with pytest.raises(CheckpointKeyError, match=r"missing keys: point_adapter"):
        load_dispose_controlnet(partial, models.unet)
    torch.save({**state, "unet.conv_out.weight": torch.zeros(1)}, partial)
    with pytest.raises(CheckpointKeyError, match=r"1 unexpected keys: unet.conv_out.weight"):
        load_dispose_controlnet(partial, models.unet)
    torch.save({**state, "controlnet_mid_block.bias": torch.zeros(7)}, partial)
    with pytest.raises(CheckpointKeyError, match=r"1 tensors with the wrong shape: controlnet_mid_block.bias"):
        load_dispose_controlnet(partial, models.unet)
