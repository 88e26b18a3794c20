"""Hybrid ControlNet (M2a, M2b) and point adapter (M2c) against the official outputs, plus behaviour."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from golden import golden_params, rel_l2, require
from dispose_core.errors import InputError
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
from dispose_core.models.point_adapter import PointAdapter
from dispose_core.models.unet import MimicMotionUNet


def _controlnet(case) -> HybridControlNet:
    spec = case.sidecar["files"]["weights"][0]
    cfg = spec["constructor"]["resulting_config"]
    pa = spec["constructor"]["point_adapter_replaced_by"]["kwargs"]
    dims = ControlNetDims(tuple(cfg["conditioning_embedding_out_channels"]), pa["embedding_channels"], pa["mid_dim"])
    net = HybridControlNet(case.sidecar["unet_config_for_from_unet"], dims).eval()
    assert net.level_rates() == tuple(pa["downsample_rate"])
    net.load_state_dict(case.weights(spec["file"]), strict=True)
    return net


@golden_params("M2a")
def test_controlnet_motion_golden(golden_name):
    _check_controlnet_case(require(golden_name))


@golden_params("M2b")
def test_controlnet_points_golden(golden_name):
    _check_controlnet_case(require(golden_name))


def _check_controlnet_case(case):
    net, t, shapes = _controlnet(case), case.tensors, case.sidecar["shapes"]
    scale = float(re.search(r"conditioning_scale=([0-9.]+)", case.sidecar["computes"]).group(1))
    with torch.no_grad():
        motion = net.encode_motion(t["in.controlnet_flow"], t["in.traj_flow"])
        points = None
        if "in.ref_point_emb" in t:
            points = net.encode_points(
                t["in.ref_point_emb"][0], t["in.point_candidate"], t["in.point_subset"], shapes["H"], shapes["W"]
            )
        down, mid = net(
            t["in.sample"], t["in.timestep"], t["in.encoder_hidden_states"], t["in.added_time_ids"],
            motion, points, conditioning_scale=scale,
        )
    tol = case.sidecar["tolerance"]["recommended"]
    expected = sorted(k for k in t if k.startswith("out.down_res."))
    assert len(down) == len(expected)
    for got, key in zip(down, expected):
        assert rel_l2(got, t[key]) < tol, key
    assert rel_l2(mid, t["out.mid_res"]) < tol


@golden_params("M2c")
def test_point_adapter_golden(golden_name):
    case = require(golden_name)
    spec = case.sidecar["files"]["weights"][0]
    k = spec["constructor"]
    adapter = PointAdapter(k["embedding_channels"], k["channels"], k["downsample_rate"], k["mid_dim"]).eval()
    adapter.load_state_dict(case.weights(spec["file"]), strict=True)
    t, shapes = case.tensors, case.sidecar["shapes"]
    with torch.no_grad():
        levels = adapter(t["in.point_embedding"][0], t["in.point_candidate"], t["in.point_subset"],
                         shapes["H"], shapes["W"])
    for i, got in enumerate(levels):
        assert rel_l2(got, t[f"out.level.{i}"][0]) < case.sidecar["tolerance"]["recommended"]


def test_point_adapter_sparse_mlp_equals_dense():
    """MLPs on hit cells only == the official dense MLP times mask (bias of empty cells removed)."""
    torch.manual_seed(0)
    adapter = PointAdapter(16, (32, 32), (16, 32), 8).eval()
    emb = torch.randn(18, 16)
    kp = torch.rand(3, 18, 2)
    kp[0, 2] = -1.0
    sub = torch.ones(3, 18)
    sub[1, :4] = -1
    h, w = 128, 64
    with torch.no_grad():
        got = adapter(emb, kp, sub, h, w)
        gh, gw = h // 16, w // 16
        grid, count = torch.zeros(3, gh, gw, 16), torch.zeros(3, gh, gw)
        for f in range(3):  # plain reference loop, as the official code
            for k in range(18):
                if sub[f, k] == -1 or kp[f, k].min() < 0:
                    continue
                x = min(int(kp[f, k, 0] * gw), gw - 1)
                y = min(int(kp[f, k, 1] * gh), gh - 1)
                grid[f, y, x] += emb[k]
                count[f, y, x] += 1
        mask = (count > 0).float()
        grid = grid / count.clamp_min(1)[..., None]
        for level, mlp, rate in zip(got, adapter.model_list, adapter.downsample_rates):
            dense = (mlp(grid) * mask[..., None]).permute(0, 3, 1, 2)
            size = (h // rate, w // rate)
            ref = F.interpolate(dense, size=size, mode="bilinear") * F.interpolate(mask[:, None], size=size)
            torch.testing.assert_close(level, ref, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_pair():
    torch.manual_seed(0)
    unet = MimicMotionUNet(
        block_out_channels=(32, 32, 32, 32), num_attention_heads=(1, 2, 2, 2), cross_attention_dim=32,
        addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=2,
    ).eval()
    net = HybridControlNet.from_unet(unet, ControlNetDims((8, 16, 16, 32), 24, 8)).eval()
    for p in net.parameters():  # zero-initialised layers would hide every difference
        torch.nn.init.normal_(p, std=0.2)
    return unet, net


def _inputs(b, f=3, h=128, w=64):
    g = torch.Generator().manual_seed(1)
    return dict(
        sample=torch.randn(b, f, 8, h // 8, w // 8, generator=g), timestep=torch.tensor(0.3),
        encoder_hidden_states=torch.randn(b, 1, 32, generator=g), added_time_ids=torch.tensor([[6.0, 127.0, 0.02]] * b),
        flows=(torch.randn(1, f - 1, 2, h, w, generator=g), torch.randn(1, f - 1, 2, h, w, generator=g)),
        points=(torch.randn(18, 24, generator=g), torch.rand(f, 18, 2, generator=g), torch.zeros(f, 18)),
    )


def test_from_unet_copies_encoder_but_not_add_embedding():
    torch.manual_seed(0)
    unet = MimicMotionUNet(
        block_out_channels=(32, 32, 32, 32), num_attention_heads=(1, 2, 2, 2), cross_attention_dim=32,
        addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=2,
    )
    net = HybridControlNet.from_unet(unet, ControlNetDims((8, 16, 16, 32), 24, 8))
    u, c = unet.state_dict(), net.state_dict()
    shared = [k for k in c if k in u]
    assert shared and all(k.split(".")[0] in ("conv_in", "time_embedding", "down_blocks", "mid_block", "add_embedding")
                          for k in shared)
    for k in shared:
        assert torch.equal(u[k], c[k]) != k.startswith("add_embedding"), k


def test_controlnet_batch1_and_cfg_batch_share_features(tiny_pair):
    _, net = tiny_pair
    x = _inputs(1)
    with torch.no_grad():
        motion = net.encode_motion(*x["flows"])
        points = net.encode_points(*x["points"], 128, 64)
        d1, m1 = net(x["sample"], x["timestep"], x["encoder_hidden_states"], x["added_time_ids"], motion, points)
        cat = lambda v: torch.cat([v, v])  # noqa: E731
        d2, m2 = net(cat(x["sample"]), x["timestep"], cat(x["encoder_hidden_states"]), cat(x["added_time_ids"]),
                     motion, points)
        d3, _ = net(cat(x["sample"]), x["timestep"], cat(x["encoder_hidden_states"]), cat(x["added_time_ids"]),
                    cat(motion), [cat(p) for p in points])
    assert motion.shape[0] == 3 and len(d1) == 12
    assert rel_l2(m2[3:], m1) < 1e-5  # identical halves -> the B=1 result
    for a, b in zip(d2, d3):
        torch.testing.assert_close(a, b)


def test_controlnet_signal_scales(tiny_pair):
    _, net = tiny_pair
    x = _inputs(1)
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"], x["added_time_ids"])
    with torch.no_grad():
        motion = net.encode_motion(*x["flows"])
        points = net.encode_points(*x["points"], 128, 64)
        _, mid_off = net(*args, motion, points, motion_scale=0.0, point_scale=0.0)
        _, mid_none = net(*args, None, None)
        down_p0, mid_p0 = net(*args, motion, points, point_scale=0.0)
        down_p1, mid_p1 = net(*args, motion, points)
        down_half, _ = net(*args, motion, points, conditioning_scale=0.5)
    torch.testing.assert_close(mid_off, mid_none)
    assert not torch.allclose(mid_p0, mid_p1)
    for j in range(4):  # skips of block 0 (and conv_in) are taken before the first point level
        torch.testing.assert_close(down_p0[j], down_p1[j])
    assert not torch.allclose(down_p0[4], down_p1[4])
    torch.testing.assert_close(down_half[5], down_p1[5] * 0.5)


def test_controlnet_rejects_bad_inputs(tiny_pair):
    _, net = tiny_pair
    x = _inputs(1)
    flow = x["flows"][0]
    with pytest.raises(InputError, match="multiple of 64"):
        net.encode_motion(flow[..., :96, :], flow[..., :96, :])
    with pytest.raises(InputError, match="both be"):
        net.encode_motion(flow, flow[:, :1])
    emb, kp, sub = x["points"]
    with pytest.raises(InputError, match="reference embeddings"):
        net.encode_points(emb[:, :8], kp, sub, 128, 64)
    with pytest.raises(InputError, match="subset"):
        net.encode_points(emb, kp, sub[:, :5], 128, 64)
    motion = net.encode_motion(*x["flows"])
    with pytest.raises(InputError, match="motion feature"):
        net(x["sample"][:, :2], x["timestep"], x["encoder_hidden_states"], x["added_time_ids"], motion)
