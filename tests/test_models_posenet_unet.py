"""PoseNet (M1) and MimicMotion UNet (M3*) against the official outputs; residual quirk; input checks."""
from __future__ import annotations

import copy

import pytest
import torch

from golden import golden_params, rel_l2, require
from dispose_core.errors import InputError
from dispose_core.models.posenet import PoseNet
from dispose_core.models.svd_trunk import set_official_batch_quirk
from dispose_core.models.unet import MimicMotionUNet


def _module(case, cls):
    spec = case.sidecar["files"]["weights"][0]
    model = cls(**spec["constructor"]).eval()
    model.load_state_dict(case.weights(spec["file"]), strict=True)
    return model


@golden_params("M1")
def test_posenet_golden(golden_name):
    case = require(golden_name)
    model = _module(case, PoseNet)
    with torch.no_grad():
        out = model(case.tensors["in.pose_image"])
    assert rel_l2(out, case.tensors["out.pose_latents"]) < case.sidecar["tolerance"]["recommended"]


def _unet_call(model, t):
    residuals = [t[k] for k in sorted(t) if k.startswith("in.down_res.")] or None
    with torch.no_grad():
        return model(
            t["in.sample"], t["in.timestep"], t["in.encoder_hidden_states"], t["in.added_time_ids"],
            pose_latents=t.get("in.pose_latents"),
            down_block_additional_residuals=residuals,
            mid_block_additional_residual=t.get("in.mid_res"),
        )


@golden_params("M3")
def test_unet_golden(golden_name):
    case = require(golden_name)
    out = _unet_call(_module(case, MimicMotionUNet), case.tensors)
    assert rel_l2(out, case.tensors["out.sample"]) < case.sidecar["tolerance"]["recommended"]


def _tiny_unet() -> MimicMotionUNet:
    torch.manual_seed(0)
    return MimicMotionUNet(
        block_out_channels=(32, 32, 32, 32), num_attention_heads=(1, 2, 2, 2), cross_attention_dim=32,
        addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=2,
    ).eval()


def test_residual_multiplicities_follow_block_structure():
    assert _tiny_unet().residual_multiplicities() == [4, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1]
    one_layer = MimicMotionUNet(
        block_out_channels=(32, 32, 32, 32), num_attention_heads=(1, 2, 2, 2), cross_attention_dim=32,
        addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=1,
    )
    assert one_layer.residual_multiplicities() == [4, 4, 4, 3, 3, 2, 2, 1]


def _inputs(b=1, f=2, h=8, w=8):
    return (torch.randn(b, f, 8, h, w), torch.tensor(0.1), torch.randn(b, 1, 32),
            torch.tensor([[6.0, 127.0, 0.02]] * b))


def test_unet_rejects_bad_shapes():
    unet = _tiny_unet()
    sample, t, ehs, ids = _inputs()
    with pytest.raises(InputError, match="divisible"):
        unet(torch.randn(1, 2, 8, 12, 8), t, ehs, ids)
    with pytest.raises(InputError, match="sample must be"):
        unet(torch.randn(1, 2, 4, 8, 8), t, ehs, ids)
    with pytest.raises(InputError, match="added_time_ids"):
        unet(sample, t, ehs, ids[:, :2])
    with pytest.raises(InputError, match="pose_latents"):
        unet(sample, t, ehs, ids, pose_latents=torch.zeros(2, 32, 4, 4))
    with pytest.raises(InputError, match="timestep"):
        unet(sample, torch.zeros(3), ehs, ids)
    with pytest.raises(InputError, match="mid residual"):
        unet(sample, t, ehs, ids, mid_block_additional_residual=torch.zeros(2, 32, 2, 2))
    with pytest.raises(InputError, match="residuals"):
        unet(sample, t, ehs, ids, down_block_additional_residuals=[torch.zeros(2, 32, 8, 8)])


def test_posenet_rejects_bad_shapes():
    with pytest.raises(InputError, match="divisible by 8"):
        PoseNet(32)(torch.zeros(1, 3, 20, 16))
    with pytest.raises(InputError, match=r"\(N,3,H,W\)"):
        PoseNet(32)(torch.zeros(1, 4, 16, 16))


def test_official_batch_quirk_mixes_cfg_halves_and_can_be_switched_off():
    """diffusers-0.27 layout (default): a CFG batch item is not independent of the other one."""
    unet = _tiny_unet()
    sample, t, ehs, ids = _inputs(b=2)
    with torch.no_grad():
        alone = unet(sample[1:], t, ehs[1:], ids[1:])
        quirky = unet(sample, t, ehs, ids)
        fixed_copy = copy.deepcopy(unet)
        set_official_batch_quirk(fixed_copy, False)
        fixed = fixed_copy(sample, t, ehs, ids)
        again = unet(sample, t, ehs, ids)  # the original keeps its own setting
    assert rel_l2(fixed[1:], alone) < 1e-5
    assert rel_l2(quirky[1:], alone) > 1e-3
    assert torch.equal(again, quirky)
