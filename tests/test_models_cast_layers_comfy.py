"""ComfyUI's own partial load (its --lowvram path) on our casting layers: fewer weight bytes loaded,
the same output. On a CPU host both devices are the CPU, so what is "loaded" is ComfyUI's own
accounting (``model_loaded_weight_memory``) and the layers it marks ``comfy_cast_weights``."""
from __future__ import annotations

import pytest
import torch

from test_models_cast_layers import _inputs
from test_models_posenet_unet import _tiny_unet
from dispose_core.models.cast_layers import casting_layers, weight_bytes

pytestmark = pytest.mark.comfy


def test_comfy_partial_load_streams_our_layers():
    import comfy.model_patcher

    unet = _tiny_unet()
    with torch.no_grad():
        expected = unet(*_inputs())
    layers = casting_layers(unet)
    cpu = torch.device("cpu")
    patcher = comfy.model_patcher.ModelPatcher(torch.nn.ModuleDict({"model": unet}), load_device=cpu,
                                               offload_device=cpu)
    total = weight_bytes(unet)
    patcher.load(cpu, lowvram_model_memory=total // 3)
    assert 0 < patcher.model.model_loaded_weight_memory <= total // 3
    streamed = [layer for layer in layers if layer.comfy_cast_weights]
    assert 0 < len(streamed) < len(layers)
    with torch.no_grad():
        assert torch.equal(unet(*_inputs()), expected)
