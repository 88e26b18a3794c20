"""bench/gpu/attention.py: a benchmark mode's ComfyUI attention function reaches the models the pack
builds inside ComfyUI (``comfy_bridge.model_ops`` reads ``optimized_attention`` at build time), only
while the loaders run; a function ComfyUI did not register is a skip reason naming its package."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from dispose_core.models.unet import MimicMotionUNet
from dispose_core.tiny.svd import TINY_UNET_CONFIG
from host_utils import load_pack

pytestmark = pytest.mark.comfy


def test_models_built_inside_the_swap_call_the_named_function_and_the_global_comes_back():
    from comfy.ldm.modules import attention

    from bench.gpu.attention import attention_in, building_with

    bridge = load_pack().nodes.comfy_bridge
    before = attention.optimized_attention
    with building_with("split"):
        unet = MimicMotionUNet.build(TINY_UNET_CONFIG, ops=bridge.model_ops(torch.float32))
    assert attention.optimized_attention is before
    assert attention_in(unet) == "split"
    with building_with(None):
        default = MimicMotionUNet.build(TINY_UNET_CONFIG, ops=bridge.model_ops(torch.float32))
    assert attention_in(default) == {attention.attention_sub_quad: "sub_quad",  # ComfyUI's choice on a CPU
                                     attention.attention_pytorch: "pytorch"}[before]


def test_unregistered_functions_give_the_reason():
    from bench.gpu.attention import unavailable

    assert unavailable("split") is None and unavailable("pytorch") is None
    assert unavailable("no_such") == "ComfyUI registered no 'no_such' attention function"
    if importlib.util.find_spec("flash_attn") is None:
        assert unavailable("flash") == "flash_attn is not installed (ComfyUI registers 'flash' attention only with it)"
