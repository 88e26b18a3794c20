"""Our models built with ComfyUI's layers and attention (``comfy_bridge.model_ops``): the same
numbers as the plain torch path, and ComfyUI's own partial load (its --lowvram path) on them.
On a CPU host both devices are the CPU, so what is "loaded" is ComfyUI's own accounting
(``model_loaded_weight_memory``) and the layers it marks ``comfy_cast_weights``."""
from __future__ import annotations

import pytest
import torch

from golden import rel_l2
from host_utils import load_pack
from test_models_controlnet import _inputs
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
from dispose_core.models.layer_ops import LAYER_NAMES, ModelOps
from dispose_core.models.posenet import PoseNet
from dispose_core.models.unet import MimicMotionUNet
from dispose_core.tiny.svd import TINY_UNET_CONFIG

pytestmark = pytest.mark.comfy
DIMS = ControlNetDims((8, 16, 16, 32), 24, 8)
FP32_TOLERANCE = 1e-5  # relative L2; measured 2026-12-06 on both CPU hosts: 6.9e-7 (0 with attention_pytorch)


def _bridge():
    return load_pack().nodes.comfy_bridge


def _models(ops: ModelOps | None = None, like: dict | None = None) -> dict[str, torch.nn.Module]:
    """UNet, ControlNet and PoseNet of the tiny config; random weights (seeded), or those of ``like``."""
    kwargs = {} if ops is None else {"ops": ops}
    models = {"unet": MimicMotionUNet.build(TINY_UNET_CONFIG, **kwargs),
              "controlnet": HybridControlNet(TINY_UNET_CONFIG, DIMS, **kwargs),
              "pose_net": PoseNet(TINY_UNET_CONFIG["block_out_channels"][0], **kwargs)}
    g = torch.Generator().manual_seed(0)
    for name, model in models.items():
        if like is None:  # zero-initialised layers (ControlNet outputs) would hide every difference
            for p in model.parameters():
                p.data = torch.randn(p.shape, generator=g) * 0.2
        else:
            model.load_state_dict(like[name].state_dict())
        model.eval()
    return models


@torch.no_grad()
def _run(models: dict[str, torch.nn.Module]) -> torch.Tensor:
    """The full sample-phase call: PoseNet, the ControlNet with motion and points, the UNet with its residuals."""
    x = _inputs(2)
    net = models["controlnet"]
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"], x["added_time_ids"])
    pose = models["pose_net"](torch.randn(2 * 3, 3, 128, 64, generator=torch.Generator().manual_seed(2)))
    down, mid = net(*args, net.encode_motion(*x["flows"]), net.encode_points(*x["points"], 128, 64))
    return models["unet"](*args, pose_latents=pose, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid)


def _attention_choices():
    import comfy.ldm.modules.attention as attention

    return {"optimized": attention.optimized_attention, "basic": attention.attention_basic,
            "pytorch": attention.attention_pytorch, "split": attention.attention_split,
            "sub_quad": attention.attention_sub_quad}


@pytest.mark.parametrize("cast", [False, True], ids=["pick_operations", "manual_cast"])
@pytest.mark.parametrize("attention", ["optimized", "basic", "pytorch", "split", "sub_quad"])
def test_comfy_ops_and_attention_equal_the_plain_path(attention, cast):
    import comfy.ldm.modules.attention
    import comfy.ops

    ops = _bridge().model_ops(torch.float32)
    assert ops.attention is comfy.ldm.modules.attention.optimized_attention and ops.should_stop is not None
    ops = ModelOps(comfy.ops.manual_cast if cast else ops.operations, _attention_choices()[attention],
                   ops.should_stop)
    plain = _models()
    hosted = _models(ops, like=plain)
    for model in hosted.values():  # every torch layer is ComfyUI's subclass of it
        assert not [m for m in model.modules() if type(m) in {getattr(torch.nn, n) for n in LAYER_NAMES}]
        assert any(isinstance(m, comfy.ops.CastWeightBiasOp) for m in model.modules())
    expected, out = _run(plain), _run(hosted)
    diff = (out - expected).abs()
    print(f"comfy.ops ({'manual_cast' if cast else 'picked'}) + {attention} attention vs plain: "
          f"max abs {diff.max():.2e}, max rel {(diff / expected.abs().clamp_min(1e-3)).max():.2e}, "
          f"rel L2 {rel_l2(out, expected):.2e}")
    assert out.shape == expected.shape and rel_l2(out, expected) < FP32_TOLERANCE


def test_fp8_storage_picks_comfy_manual_cast_and_runs():
    import comfy.ops

    from dispose_core.models.cast_layers import FP8, store_weights_fp8, weight_layers

    ops = _bridge().model_ops(torch.float32, fp8=True)
    assert issubclass(ops.operations.Linear, comfy.ops.manual_cast.Linear)  # CPU: no fp8 matmul
    plain = _models()
    hosted = _models(ops, like=plain)
    with pytest.raises(ValueError, match="scaled=False"):
        store_weights_fp8(hosted["unet"])
    for name in ("unet", "controlnet"):
        store_weights_fp8(hosted[name], scaled=False)
        assert {layer.weight.dtype for layer in weight_layers(hosted[name])} == {FP8}
    error = rel_l2(_run(hosted), _run(plain))
    print(f"fp8 (unscaled, comfy manual_cast) vs fp32: rel L2 {error:.3f}")
    assert 0 < error < 0.2  # e4m3fn keeps 3 mantissa bits


def test_comfy_partial_load_streams_our_layers():
    import comfy.model_patcher
    import comfy.ops

    from dispose_core.models.cast_layers import weight_bytes

    plain = _models()
    unet = _models(_bridge().model_ops(torch.float32), like=plain)["unet"]
    expected = _run(dict(plain, unet=unet))
    cpu = torch.device("cpu")
    patcher = comfy.model_patcher.ModelPatcher(torch.nn.ModuleDict({"model": unet}), load_device=cpu,
                                               offload_device=cpu)
    total = weight_bytes(unet)
    patcher.load(cpu, lowvram_model_memory=total // 3)
    assert 0 < patcher.model.model_loaded_weight_memory <= total // 3
    layers = [m for m in unet.modules() if isinstance(m, comfy.ops.CastWeightBiasOp)]
    streamed = [layer for layer in layers if layer.comfy_cast_weights]
    assert 0 < len(streamed) < len(layers)
    assert torch.equal(_run(dict(plain, unet=unet)), expected)


def test_cancel_stops_the_loaded_unet_and_controlnet_between_blocks(tiny_models_dir):
    """The loaders build with ComfyUI's interrupt as the stop check: Cancel pressed during a block
    ends the forward before the next layer (ComfyUI's own exception), and the model runs again after."""
    import comfy.model_management as mm

    from host_utils import model_dirs
    from test_nodes_memory import _load

    with model_dirs(tiny_models_dir):
        units, net = _load()
    x = _inputs(1)
    args = (x["sample"], x["timestep"], x["encoder_hidden_states"], x["added_time_ids"])
    for model, call in ((units.denoiser.value.unet, lambda m: m(*args)), (net.value, lambda m: m(*args, None))):
        with torch.no_grad():
            expected = call(model)
        ran = []
        hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i))
                 for i, block in enumerate(model.down_blocks)]
        cancel = model.down_blocks[1].register_forward_hook(lambda *_: mm.interrupt_current_processing(True))
        try:
            with torch.no_grad(), pytest.raises(mm.InterruptProcessingException):
                call(model)
        finally:
            mm.interrupt_current_processing(False)
            cancel.remove()
        assert ran == [0, 1]  # the block running when Cancel came finished; the next one did not start
        with torch.no_grad():
            again = call(model)
        for hook in hooks:
            hook.remove()
        torch.testing.assert_close(again, expected, rtol=0, atol=0)
