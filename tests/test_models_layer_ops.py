"""Models built with a host's layers/attention/stop check (``ModelOps``): the plain ops keep the
official numbers, a host's layer subclasses are installed everywhere, and a stop check before each
layer of the blocks ends a forward early and leaves the model usable."""
from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from golden import golden_params, rel_l2, require
from test_models_posenet_unet import _inputs, _unet_call
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
from dispose_core.models.layer_ops import (LAYER_NAMES, PLAIN_OPS, ModelInterrupted, ModelOps, OpsAttnProcessor,
                                           apply_ops)
from dispose_core.models.posenet import PoseNet
from dispose_core.models.unet import MimicMotionUNet

TINY = dict(block_out_channels=(32, 32, 32, 32), num_attention_heads=(1, 2, 2, 2), cross_attention_dim=32,
            addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=2)
# Stop checks per forward, one before each resnet and transformer of the blocks (SVD layout, 2 layers
# per block): UNet down 3 x (2 + 2) + 2, mid 2 + 1, up 4 x 3 + 3 x 3; ControlNet down and mid only.
UNET_CHECKS, CONTROLNET_CHECKS = 14 + 3 + 21, 14 + 3


@golden_params("M3")
def test_plain_ops_unet_matches_the_golden_and_diffusers_attention(golden_name):
    """Our attention processor (plain ops: torch SDPA) against the official output and against
    diffusers' own SDPA processor on the same weights."""
    case = require(golden_name)
    spec = case.sidecar["files"]["weights"][0]
    unet = MimicMotionUNet.build(spec["constructor"], PLAIN_OPS).eval()
    unet.load_state_dict(case.weights(spec["file"]), strict=True)
    attention = [m for m in unet.modules() if isinstance(m, Attention)]
    assert attention and all(isinstance(m.processor, OpsAttnProcessor) for m in attention)
    ours = _unet_call(unet, case.tensors)
    assert rel_l2(ours, case.tensors["out.sample"]) < case.sidecar["tolerance"]["recommended"]
    for m in attention:
        m.set_processor(AttnProcessor2_0())
    torch.testing.assert_close(ours, _unet_call(unet, case.tensors), atol=1e-6, rtol=1e-5)


def _host_ops(**kwargs) -> ModelOps:
    """A stand-in host: a marked subclass of each torch layer, as ComfyUI's comfy.ops gives."""
    operations = type("HostOps", (), {n: type(f"Host{n}", (getattr(nn, n),), {}) for n in LAYER_NAMES})
    return ModelOps(operations, **kwargs)


def _torch_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if type(m) in {getattr(nn, n) for n in LAYER_NAMES}]


def test_host_layers_replace_every_torch_layer_and_attention_is_the_hosts():
    calls = []

    def attention(q, k, v, heads):
        calls.append(heads)
        return torch.nn.functional.scaled_dot_product_attention(
            *(t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))).transpose(1, 2).flatten(2)

    ops = _host_ops(attention=attention)
    torch.manual_seed(0)
    plain = MimicMotionUNet.build(TINY).eval()
    torch.manual_seed(0)
    hosted = MimicMotionUNet.build(TINY, ops).eval()
    net = HybridControlNet(plain.config, ControlNetDims((8, 16, 16, 32), 24, 8), ops)
    pose_net = PoseNet(32, ops=ops)
    for model in (hosted, net, pose_net):
        assert not _torch_layers(model)
        assert any(type(m).__name__ == "HostConv2d" for m in model.modules())
    assert plain.state_dict().keys() == hosted.state_dict().keys()
    inputs = _inputs()
    with torch.no_grad():
        expected, out = plain(*inputs), hosted(*inputs)
    # one call per attention module (self- and cross-attention of the spatial and temporal blocks)
    assert len(calls) == sum(isinstance(m, Attention) for m in hosted.modules())
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_a_host_layer_that_is_not_a_torch_subclass_is_refused():
    operations = type("Bad", (), {n: getattr(nn, n) for n in LAYER_NAMES} | {"Linear": nn.Conv1d})
    with pytest.raises(TypeError, match="Linear must subclass"):
        apply_ops(nn.Sequential(nn.Linear(2, 2)), ModelOps(operations))


class _StopAfter:
    """A stop check that says stop on its ``n``-th call; counts calls."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def _record_layers(model: nn.Module) -> list[str]:
    """Names of the block layers (resnets, transformers) in the order they finish running."""
    ran: list[str] = []
    for name, module in model.named_modules():
        if name.split(".")[0] in ("down_blocks", "mid_block", "up_blocks") \
                and name.split(".")[-2:-1] in (["resnets"], ["attentions"]):
            module.register_forward_hook(lambda *_, tag=name: ran.append(tag))
    return ran


@pytest.mark.parametrize("stop_at", [1, 2, 15, 20, UNET_CHECKS])
def test_unet_stops_before_a_block_layer_and_stays_usable(stop_at):
    torch.manual_seed(0)
    unet = MimicMotionUNet.build(TINY).eval()
    inputs = _inputs()
    with torch.no_grad():
        expected = unet(*inputs)
    ran = _record_layers(unet)
    unet.should_stop = stop = _StopAfter(stop_at)
    with torch.no_grad(), pytest.raises(ModelInterrupted):
        unet(*inputs)
    assert stop.calls == stop_at and len(ran) == stop_at - 1  # nothing ran after the check said stop
    ran.clear()
    unet.should_stop = stop = _StopAfter(UNET_CHECKS + 1)  # one more than a forward makes
    with torch.no_grad():
        assert torch.equal(unet(*inputs), expected)
    assert stop.calls == len(ran) == UNET_CHECKS
    assert ran[0] == "down_blocks.0.resnets.0" and ran[-1] == "up_blocks.3.attentions.2"


def test_controlnet_stops_with_the_hosts_exception_and_copies_ask_their_own_check():
    class HostInterrupt(BaseException):  # ComfyUI's interrupt is a BaseException raised by the check itself
        pass

    checks = []

    def should_stop() -> bool:
        checks.append(1)
        if len(checks) == 3:
            raise HostInterrupt
        return False

    torch.manual_seed(0)
    config = MimicMotionUNet.build(TINY).config
    net = HybridControlNet(config, ControlNetDims((8, 16, 16, 32), 24, 8), ModelOps(should_stop=should_stop)).eval()
    ran = _record_layers(net)
    sample, t, ehs, ids = _inputs()
    with torch.no_grad(), pytest.raises(HostInterrupt):
        net(sample, t, ehs, ids, None)
    assert ran == ["down_blocks.0.resnets.0", "down_blocks.0.attentions.0"]
    ran.clear()
    with torch.no_grad():
        _, mid = net(sample, t, ehs, ids, None)
    assert len(ran) == CONTROLNET_CHECKS and len(checks) == 3 + CONTROLNET_CHECKS and torch.isfinite(mid).all()
    copy_checks = []
    twin = copy.deepcopy(net)
    twin.should_stop = lambda: copy_checks.append(1) or False
    with torch.no_grad():
        twin(sample, t, ehs, ids, None)
    assert len(copy_checks) == CONTROLNET_CHECKS and len(checks) == 3 + CONTROLNET_CHECKS


def test_stop_check_does_not_split_a_compiled_unet():
    """Under torch.compile (core TorchCompileModel) the stop check is left out of the trace: a host's
    check takes a lock, which dynamo cannot trace, so each of the 38 checks would end a graph (on
    this tiny UNet: 13 graphs with the check traced, 2 without). Eager calls still check."""
    import threading

    lock, checks = threading.Lock(), []

    def should_stop():
        with lock:
            checks.append(1)
        return False

    unet = MimicMotionUNet.build(TINY, ModelOps(PLAIN_OPS.operations, PLAIN_OPS.attention, should_stop)).eval()
    sample, t, ehs, ids = _inputs()
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(unet)(sample, t, ehs, ids)
    assert explained.graph_count <= 2 and not checks
    with torch.no_grad():
        unet(sample, t, ehs, ids)
    assert len(checks) == UNET_CHECKS
