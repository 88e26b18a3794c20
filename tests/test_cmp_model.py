"""CMP: strict loading against the manifest, golden G3 with the shipped random weights, batching."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dispose_core.errors import CheckpointKeyError, InputError, ModelFileError
from dispose_core.motion.cmp import PREFIX, CMPConfig, CMPModel, load_cmp
from dispose_core.motion.dense_flow import compute_dense_flow, propagate_flow
from dispose_core.motion.sparse_flow import anchored_flows, cmp_sparse_flow
from golden import golden_dir, golden_params, require
from resources import MANIFESTS
from motion_fixtures import densify_coo, make_poses, random_poses

MANIFEST = MANIFESTS / "cmp.json"


def test_full_size_model_matches_manifest():
    manifest = json.loads(MANIFEST.read_text())
    expected = {k.removeprefix(PREFIX): tuple(v["shape"]) for k, v in manifest["keys"].items()}
    assert all(k.startswith(PREFIX) for k in manifest["keys"])
    with torch.device("meta"):
        model = CMPModel()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    counted = [v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert sum(counted) == manifest["num_params"]
    assert CMPConfig.from_state_dict(model.state_dict()) == CMPConfig()
    assert model.bin_centers.numel() == manifest["runtime_values"]["nbins"]


@pytest.fixture(scope="module")
def golden_cmp():
    return load_cmp(golden_dir() / "cmp_random_weights.safetensors")


@golden_params("G3")
def test_golden_cmp_flow(golden_name, golden_cmp):
    case = require(golden_name)
    t, tol = case.tensors, case.sidecar["tolerance"]
    assert case.sidecar["weights"]["file"] == "cmp_random_weights.safetensors"
    h, w = (int(v) for v in t["target_size_hw"])
    steps = t["cmp_flow_384"].shape[1]
    image = t["first_frame_384_u8"].permute(2, 0, 1).float() / 255
    poses = make_poses(t["keypoints"], t["subset"], h, w)

    # the sparse input we build equals the stored one
    sparse = cmp_sparse_flow(poses)
    flow384, mask384 = sparse.dense()
    exp_flow, exp_mask = densify_coo(t["sparse_flow_384_coo"], steps, 384, 384)
    assert torch.equal(mask384, exp_mask)
    torch.testing.assert_close(flow384, exp_flow, atol=1e-4, rtol=0)

    with torch.inference_mode():
        features = golden_cmp.encode_image(image[None])  # once for all three checks
        half = golden_cmp.logits_to_flow(golden_cmp.logits(features, exp_flow, exp_mask))
        full = golden_cmp.propagate(features, exp_flow, exp_mask)
    torch.testing.assert_close(half, t["cmp_flow_192"], atol=tol["cmp_flow_192"]["atol"], rtol=0)
    torch.testing.assert_close(full, t["cmp_flow_384"][0], atol=tol["cmp_flow_384"]["atol"], rtol=0)

    dense = propagate_flow(golden_cmp, features, sparse, h, w, batch_size=max(1, steps - 1))
    assert tuple(dense.flow.shape[-2:]) == (384, 384) and (dense.height, dense.width) == (h, w)  # kept compact
    assert dense.flow.dtype == torch.float16  # its rounding must stay inside the G3 tolerance below
    expanded = dense.fields()
    torch.testing.assert_close(expanded, t["controlnet_flow"][0], atol=tol["controlnet_flow"]["atol"], rtol=0)
    assert dense.num_frames == poses.num_frames
    assert torch.equal(torch.cat([dense.fields(s, s + 1) for s in range(steps)]), expanded)  # per-frame expansion


def _tiny_model(seed: int = 0) -> CMPModel:
    torch.manual_seed(seed)
    cfg = CMPConfig(stem=8, planes=(4, 4, 8, 8), blocks=(1, 1, 2, 1), image_dim=8, sparse_hidden=4, sparse_dim=4,
                    branch=8, fusion8=8, skip4=4, fusion4=8, skip2=4, fusion2=8)
    model = CMPModel(cfg)
    for m in model.modules():  # non-trivial BN statistics so eval-mode BN is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval().requires_grad_(False)


def test_batched_equals_one_call_per_frame_and_callbacks():
    model = _tiny_model()
    poses = random_poses(5, 96, 64, seed=2)
    reference = torch.rand(3, 96, 64)
    calls = []
    dense = compute_dense_flow(model, reference, poses, batch_size=2, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(2, 4), (4, 4)]
    from dispose_core.motion.dense_flow import resize_flow
    from dispose_core.motion.sparse_flow import cmp_image
    flow, mask = cmp_sparse_flow(poses).dense()
    with torch.inference_mode():
        single = model(cmp_image(reference)[None].expand(4, -1, -1, -1), flow, mask)
    # stored in float16: within one float16 step (2^-10 relative) of the float32 per-frame calls
    torch.testing.assert_close(dense.fields(), resize_flow(single, 96, 64), atol=1e-5, rtol=2 ** -10)
    assert dense.fields().shape == (4, 2, 96, 64) and dense.fields().dtype == torch.float32


def test_should_stop_interrupts():
    class Stop(Exception):
        pass

    def stop():
        raise Stop

    with pytest.raises(Stop):
        compute_dense_flow(_tiny_model(), torch.rand(3, 40, 30), random_poses(3, 40, 30), should_stop=stop)


def test_reference_size_must_match_canvas():
    with pytest.raises(InputError, match="does not match the pose canvas"):
        compute_dense_flow(_tiny_model(), torch.rand(3, 40, 31), random_poses(3, 40, 30))
    with pytest.raises(InputError):
        compute_dense_flow(_tiny_model(), torch.rand(3, 40, 30), random_poses(3, 40, 30), batch_size=0)


def test_half_precision_and_one_driving_frame():
    model = _tiny_model().to(torch.bfloat16)
    dense = compute_dense_flow(model, torch.rand(3, 48, 40), random_poses(2, 48, 40))
    assert dense.fields().shape == (1, 2, 48, 40) and dense.num_frames == 2
    assert dense.fields().dtype == torch.float32 and torch.isfinite(dense.fields()).all()


def _save_container(path, sd, prefix=PREFIX):
    torch.save({"state_dict": {prefix + k: v for k, v in sd.items()}, "step": 42000}, path)


def test_container_prefixed_unprefixed_and_without_batch_counters(tmp_path):
    model = _tiny_model(1)
    sd = model.state_dict()
    probe = (torch.rand(1, 3, 64, 64), torch.randn(1, 2, 64, 64), torch.ones(1, 2, 64, 64))
    expected = model(*probe)
    for name, prefix, drop_counters in [("a.pth.tar", PREFIX, False), ("b.pth.tar", "", False),
                                        ("c.pth.tar", PREFIX, True)]:
        weights = {k: v for k, v in sd.items() if not (drop_counters and k.endswith("num_batches_tracked"))}
        _save_container(tmp_path / name, weights, prefix)
        loaded = load_cmp(tmp_path / name)
        assert loaded.config == model.config and not loaded.training
        torch.testing.assert_close(loaded(*probe), expected)


def test_missing_file_message(tmp_path):
    with pytest.raises(ModelFileError) as err:
        load_cmp(tmp_path / "cmp" / "ckpt_iter_42000.pth.tar")
    # written out by hand: the file, where we looked, where to download it, and which node needs it
    assert str(err.value) == (
        f"Model file 'ckpt_iter_42000.pth.tar' not found in {tmp_path / 'cmp'}. Download it from "
        "https://huggingface.co/MyNiuuu/MOFA-Video-Hybrid (models/cmp/experiments/semiauto_annot/"
        "resnet50_vip+mpii_liteflow/checkpoints) and put it into ComfyUI/models/cmp/ "
        "(needed by CMP Loader (DisPose)).")


def test_wrong_keys_are_listed_with_counts(tmp_path):
    sd = dict(_tiny_model().state_dict())
    sd.pop("flow_decoder.head.bias")
    sd.pop("flow_encoder.features.1.running_mean")
    sd["flow_decoder.extra.weight"] = torch.zeros(3)
    path = tmp_path / "ckpt_iter_42000.pth.tar"
    _save_container(path, sd)
    with pytest.raises(CheckpointKeyError) as err:
        load_cmp(path)
    msg = str(err.value)
    assert "2 missing keys: flow_decoder.head.bias, flow_encoder.features.1.running_mean" in msg
    assert "1 unexpected keys: flow_decoder.extra.weight" in msg and str(path) in msg


def test_mixed_prefix_and_non_tensor_entries_are_refused(tmp_path):
    sd = dict(_tiny_model().state_dict())
    first = next(iter(sd))
    mixed = {(k if k == first else PREFIX + k): v for k, v in sd.items()}
    torch.save({"state_dict": mixed, "step": 1}, tmp_path / "m.pth")
    with pytest.raises(CheckpointKeyError, match="unexpected keys"):
        load_cmp(tmp_path / "m.pth")
    torch.save({"state_dict": {"a": 1}, "step": 1}, tmp_path / "n.pth")
    with pytest.raises(ModelFileError, match="not a CMP checkpoint"):
        load_cmp(tmp_path / "n.pth")


def test_config_inferred_from_shapes():
    model = _tiny_model()
    assert CMPConfig.from_state_dict(model.state_dict()) == model.config
    assert np.isclose(float(model.bin_centers[0]), -50 + 50 / 99)


def _official_structure(model: CMPModel, image, sparse_flow, mask):
    """The official forward, module by module, with concatenations and no precomputation."""
    enc, dec = model.image_encoder, model.flow_decoder
    img, half, quarter = enc(image * 2 - 1)
    x = torch.cat([img, model.flow_encoder(torch.cat([sparse_flow, mask], 1))], 1)
    x1 = dec.decoder1(x)
    up = lambda t, like: torch.nn.functional.interpolate(t, size=like.shape[-2:], mode="bilinear",  # noqa: E731
                                                         align_corners=True)
    f8 = dec.fusion8(torch.cat([x1, up(dec.decoder2(x), x1), up(dec.decoder4(x), x1), up(dec.decoder8(x), x1)], 1))
    f4 = dec.fusion4(torch.cat([up(f8, quarter), dec.skipconv4(quarter)], 1))
    f2 = dec.fusion2(torch.cat([up(f4, half), dec.skipconv2(half)], 1))
    logits = dec.head(f2)
    n = model.config.nbins
    centers = model.bin_centers.to(logits.dtype)[:, None, None]
    flow = torch.stack([(logits[:, :n].softmax(1) * centers).sum(1), (logits[:, n:].softmax(1) * centers).sum(1)], 1)
    return up(flow, image)


def test_split_decoder_equals_official_structure_in_float64():
    model = _tiny_model(3).double()
    poses = random_poses(4, 128, 128, seed=9)
    flow, mask = anchored_flows(poses).dense(dtype=torch.float64)  # 128x128: any multiple of 8 works
    image = torch.rand(1, 3, 128, 128, dtype=torch.float64)
    with torch.inference_mode():
        expected = _official_structure(model, image.expand(3, -1, -1, -1), flow, mask.double())
        batched = model.propagate(model.encode_image(image), flow, mask)
    torch.testing.assert_close(batched, expected, atol=1e-10, rtol=0)
    assert expected.abs().max() > 0.01
