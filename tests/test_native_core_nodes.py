"""Core ComfyUI speed and memory nodes on MimicMotion's MODEL (issue 14, item 8): each one takes the
MODEL of MimicMotion Loader, samples with core KSampler, and does what it is for.

In-process in the ComfyUI of COMFYUI_PATH (0.3.64 and 0.33.0 in CI), on the tiny models in fp32, as
``test_native_entrances`` runs the two entrances (whose equality test covers VideoLinearCFGGuidance).
Diffusion-model calls are counted on ``MimicMotionVideoModel.forward``, the call every core wrapper
(EasyCache's, LazyCache's, context windows', CFG split's) ends in.
"""
from __future__ import annotations

import importlib
import shutil
from contextlib import contextmanager
from typing import Iterator
from unittest import mock

import pytest
import torch

from test_native_entrances import (MAX_CFG, SEED, _call, _core_model, _core_nodes, _decode, _rel,  # noqa: F401
                                   graph)  # (graph: the fixture)

pytestmark = pytest.mark.comfy
FRAMES = 6  # latent frames of the graph fixture: the reference frame + 5 poses


def core_node(module: str, name: str) -> type:
    """A core node class, or a skip naming the ComfyUI version that lacks it."""
    try:
        return getattr(importlib.import_module(f"comfy_extras.{module}"), name)
    except (ImportError, AttributeError):
        import comfyui_version

        pytest.skip(f"ComfyUI {comfyui_version.__version__} has no {name} ({module})")


@contextmanager
def model_calls() -> Iterator[list[int]]:
    """The batch size (CFG halves x frames) of every diffusion-model call made inside the block."""
    from dispose_core.sampling.video_model import MimicMotionVideoModel

    calls: list[int] = []
    real = MimicMotionVideoModel.forward

    def counted(self, x, *args, **kwargs):
        calls.append(int(x.shape[0]))
        return real(self, x, *args, **kwargs)

    with mock.patch.object(MimicMotionVideoModel, "forward", counted):
        yield calls


def ksample(graph, model, steps: int) -> tuple[torch.Tensor, list[int]]:
    """Core KSampler (euler, karras) on ``model`` -> (decoded frames, diffusion-model calls)."""
    with model_calls() as calls:
        (latent,) = _core_nodes().KSampler().sample(model, SEED, steps, MAX_CFG, "euler", "karras", graph["positive"],
                                                 graph["negative"], graph["latent"])
    return _decode(graph, latent), calls


@pytest.fixture(scope="module")
def base_model(graph):
    """Loader MODEL -> MimicMotion Tiles (4, 2) -> VideoLinearCFGGuidance, as in the entrance test."""
    return _core_model(graph, control=False)


@pytest.mark.parametrize("node, module, cls", [
    ("EasyCache", "nodes_easycache", "EasyCacheNode"),
    ("LazyCache", "nodes_easycache", "LazyCacheNode"),
])
def test_cache_nodes_skip_model_calls(graph, base_model, node, module, cls):
    """A run made for caching (10 steps, caching from the first step to the last, a reuse threshold
    no step's change reaches): the plain run calls the model once per step (both CFG halves
    batched), the cached run skips at least one call and still gives frames."""
    steps = 10
    cache = core_node(module, cls)
    if node == "EasyCache" and not channel_aware_easycache():
        pytest.skip("this ComfyUI's EasyCache cannot cache MimicMotion (see the next test)")
    cached_model = _call(cache, model=base_model, reuse_threshold=3.0, start_percent=0.0, end_percent=1.0,
                         verbose=False)[0]
    plain, plain_calls = ksample(graph, base_model, steps)
    cached, cached_calls = ksample(graph, cached_model, steps)
    print(f"{node}: {len(cached_calls)} of {len(plain_calls)} model calls, frames rel L2 {_rel(cached, plain):.2e}")
    assert plain_calls == [2 * FRAMES] * steps
    assert 0 < len(cached_calls) < steps
    assert cached.shape == plain.shape and bool(torch.isfinite(cached).all())


def channel_aware_easycache() -> bool:
    """Whether EasyCache caches only the output's channels of an 8-channel SVD-style input (0.33.0)."""
    from comfy_extras.nodes_easycache import EasyCacheHolder

    return "output_channels" in EasyCacheHolder.__init__.__code__.co_varnames


def test_channel_blind_easycache_fails_with_our_message(graph, base_model):
    """ComfyUI 0.3.64's EasyCache would return the reference latent's channels on its skipped steps
    (a shape error deep in sampling): the MODEL refuses it with a message naming the fix."""
    from dispose_core.errors import InputError

    cache = core_node("nodes_easycache", "EasyCacheNode")
    if channel_aware_easycache():
        pytest.skip("this ComfyUI's EasyCache caches the output's channels")
    cached_model = _call(cache, model=base_model, reuse_threshold=3.0, start_percent=0.0, end_percent=1.0,
                         verbose=False)[0]
    with pytest.raises(InputError, match="Use LazyCache instead, or update ComfyUI"):
        ksample(graph, cached_model, 3)


def context_windows(model, length: int):
    """Core Context Windows (Manual) over the frames (``dim`` 0): static windows of ``length`` frames
    overlapping by 2, pyramid fusion, the other settings at their defaults."""
    node = core_node("nodes_context_windows", "ContextWindowsManualNode")
    extra = {"freenoise": False} if "freenoise" in node.execute.__code__.co_varnames else {}
    return _call(node, model=model, context_length=length, context_overlap=2, context_schedule="standard_static",
                 context_stride=1, closed_loop=False, fuse_method="pyramid", dim=0, **extra)[0]


def windows_slice_poses() -> bool:
    """Whether the context windows slice the per-frame conditioning with the latent (0.33.0)."""
    from comfy.context_windows import IndexListContextWindow

    return "total_frames" in IndexListContextWindow.__init__.__code__.co_varnames


def test_context_windows_over_the_frames(graph, base_model):
    """Windows of 4 of the 6 frames: two windows (0-3, 2-5) per step, each one model call of both CFG
    halves, inside which the MODEL fuses its own tiles; the second window also gets the frame before
    it (the node's default causal_window_fix), so 5 frames. Windows as long as the video are not used
    (the plain run's frames)."""
    if not windows_slice_poses():
        pytest.skip("this ComfyUI's context windows cannot slice the poses (see the next test)")
    plain, _ = ksample(graph, base_model, 2)
    whole, _ = ksample(graph, context_windows(base_model, FRAMES), 2)
    windowed, calls = ksample(graph, context_windows(base_model, 4), 2)
    print(f"context windows (4 of {FRAMES} frames): calls {calls}, frames rel L2 to the plain run "
          f"{_rel(windowed, plain):.2e}")
    assert calls == [2 * 4, 2 * 5] * 2
    assert torch.equal(whole, plain)
    assert windowed.shape == plain.shape and bool(torch.isfinite(windowed).all())
    assert _rel(windowed, plain) > 1e-4


def test_context_windows_of_comfyui_0_3_64_fail_with_our_message(graph, base_model):
    """0.3.64's windows compare one sigma per frame with the schedule (a shape error) and would give
    every window the first window's poses: the MODEL refuses them before sampling."""
    from dispose_core.errors import InputError

    model = context_windows(base_model, 4)
    if windows_slice_poses():
        pytest.skip("this ComfyUI's context windows slice the poses")
    with pytest.raises(InputError, match="Use MimicMotion Tiles for long videos"):
        ksample(graph, model, 2)


@pytest.mark.timeout(1800)
def test_torch_compile_model_keeps_the_frames(graph, base_model):
    """TorchCompileModel (inductor on the CPU, which needs a C++ compiler: g++) gives the uncompiled
    frames within float32 tolerance. Slow: inductor builds the tiny UNet's kernels with g++ first (8 min
    on 2 busy cores; its on-disk cache makes later runs faster), hence the longer timeout."""
    compile_node = core_node("nodes_torch_compile", "TorchCompileModel")
    if shutil.which("g++") is None:
        pytest.skip("inductor on the CPU compiles C++ kernels: no g++ on PATH (apt-get install g++)")
    compiled_model = _call(compile_node, model=base_model, backend="inductor")[0]
    plain, _ = ksample(graph, base_model, 2)
    torch._dynamo.reset()
    compiled, _ = ksample(graph, compiled_model, 2)
    rel = _rel(compiled, plain)
    print(f"TorchCompileModel (inductor, CPU): frames rel L2 {rel:.2e}")
    assert rel < 1e-4


def test_multigpu_cfg_split_with_one_device_runs_the_halves_batched(graph, base_model):
    """MultiGPU CFG Split with max_gpus 1 on a one-device machine: a plain clone, so the halves stay
    batched (the official batch quirk applies) and the frames are the plain run's."""
    split = core_node("nodes_multigpu", "MultiGPUCFGSplitNode")
    split_model = _call(split, model=base_model, max_gpus=1)[0]
    plain, _ = ksample(graph, base_model, 2)
    frames, calls = ksample(graph, split_model, 2)
    assert calls == [2 * FRAMES] * 2
    assert _rel(frames, plain) < 1e-6
