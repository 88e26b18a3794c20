"""The two ways a benchmark mode samples, each timed per phase (encode, sample, decode) on a Clock.

* the one-node MimicMotion Sampler (what the example workflows use);
* the loader's MODEL through core nodes: MimicMotion Conditioning -> MimicMotion Tiles -> Apply DisPose
  Control -> core VideoLinearCFGGuidance -> (core TorchCompileModel or EasyCache) -> core CFGGuider +
  SamplerCustomAdvanced with the pack's official noise, Euler and sigmas -> MimicMotion Decode. This is
  the path on which ComfyUI's MODEL patches apply.

Runs inside ComfyUI (``bench/gpu_check.py`` imports it after ComfyUI is on sys.path).
"""
from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from unittest import mock

import torch

from bench.gpu.clock import Clock
from bench.gpu.modes import SETTINGS

PACK = "comfyui_dispose_pack"
EASYCACHE_SKIPPED = re.compile(r"skipped (\d+)/(\d+) steps")  # EasyCache's closing log line


def core_node(node: type, **kwargs) -> tuple:
    """Run a core node: V3 (``execute`` classmethod, 0.33.0) or V1 (``FUNCTION``)."""
    if hasattr(node, "FUNCTION"):
        return getattr(node(), node.FUNCTION)(**kwargs)
    return tuple(node.execute(**kwargs).result)


def one_node_sampler(units, control, ref: torch.Tensor, poses, sizes: dict, clock: Clock) -> torch.Tensor:
    """The MimicMotion Sampler node; its phases timed by wrapping the functions it calls for them."""
    from host_utils import call_node

    sampler = sys.modules[f"{PACK}.nodes.mimicmotion"]
    with mock.patch.object(sampler, "encode_phase", clock.timed("encode", sampler.encode_phase)), \
            mock.patch.object(sampler, "decode_phase", clock.timed("decode", sampler.decode_phase)), \
            mock.patch.object(sampler._ComfyPhases, "denoise", clock.timed("sample", sampler._ComfyPhases.denoise)):
        video, _ = call_node("DisPoseMimicMotionSampler", mimicmotion_model=units, reference_image=ref, poses=poses,
                             seed=SETTINGS["seed"], steps=sizes["steps"], min_guidance=SETTINGS["guidance"],
                             max_guidance=SETTINGS["guidance"], noise_aug=SETTINGS["noise_aug"], fps=SETTINGS["fps"],
                             motion_bucket_id=SETTINGS["motion_bucket_id"], tile_size=sizes["tile"],
                             overlap=sizes["overlap"], decode_chunk_size=SETTINGS["decode_chunk"], control=control)
    return video


def patched_model(model, patch: str | None, compile_backend: str):
    """``model`` through the core node ``patch`` (ComfyUI's defaults), or as it is."""
    if patch == "TorchCompileModel":
        from comfy_extras.nodes_torch_compile import TorchCompileModel

        return core_node(TorchCompileModel, model=model, backend=compile_backend)[0]
    if patch == "EasyCache":
        from comfy_extras.nodes_easycache import EasyCacheNode

        return core_node(EasyCacheNode, model=model, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95,
                         verbose=False)[0]
    return model


@contextmanager
def log_lines(into: list[str]):
    """Collect the root logger's messages (EasyCache reports its skipped steps there)."""
    handler = logging.Handler()
    handler.emit = lambda record: into.append(record.getMessage())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def timed_calls(model, into: list[float], cuda: bool):
    """A clone of ``model`` whose every model call (``apply_model``: a step's CFG batch) is timed into ``into``."""
    import comfy.patcher_extension as extension

    def timed(executor, *args, **kwargs):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = executor(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        into.append(time.perf_counter() - start)
        return out

    model = model.clone()
    model.add_wrapper_with_key(extension.WrappersMP.APPLY_MODEL, "gpu_check_timer", timed)
    return model


def after_first_step(calls: list[float], steps: int) -> float | None:
    """Seconds per step without the first one (which holds TorchCompileModel's compilation)."""
    per_step = len(calls) // steps
    return sum(calls[per_step:]) / (steps - 1) if steps > 1 and per_step else None


def core_sampler(units, model, control, ref: torch.Tensor, poses, sizes: dict, patch: str | None,
                 clock: Clock) -> tuple[torch.Tensor, dict]:
    """The loader's MODEL through core SamplerCustomAdvanced; the frames, the seconds per step after
    the first, and what the patch reported (EasyCache: steps skipped of all)."""
    from comfy_extras.nodes_custom_sampler import CFGGuider, SamplerCustomAdvanced
    from comfy_extras.nodes_video_model import VideoLinearCFGGuidance
    from host_utils import call_node

    guidance = SETTINGS["guidance"]
    with clock.region("encode"):
        positive, negative, latent = call_node(
            "DisPoseMimicMotionConditioning", mimicmotion_model=units, reference_image=ref, poses=poses,
            noise_aug=SETTINGS["noise_aug"], fps=SETTINGS["fps"], motion_bucket_id=SETTINGS["motion_bucket_id"],
            seed=SETTINGS["seed"])
    (model,) = call_node("DisPoseMimicMotionTiles", model=model, tile_size=sizes["tile"], overlap=sizes["overlap"])
    if control is not None:
        (model,) = call_node("DisPoseApplyControl", model=model, control=control)
    (model,) = core_node(VideoLinearCFGGuidance, model=model, min_cfg=guidance)
    calls: list[float] = []
    model = timed_calls(patched_model(model, patch, sizes["compile_backend"]), calls, clock.cuda)
    (noise,) = call_node("DisPoseMimicMotionNoise", seed=SETTINGS["seed"], tile_size=sizes["tile"])
    (euler,) = call_node("DisPoseMimicMotionEuler")
    (sigmas,) = call_node("DisPoseMimicMotionScheduler", steps=sizes["steps"])
    guider = core_node(CFGGuider, model=model, positive=positive, negative=negative, cfg=guidance)[0]
    messages: list[str] = []
    with clock.region("sample"), log_lines(messages):
        out = core_node(SamplerCustomAdvanced, noise=noise, guider=guider, sampler=euler, sigmas=sigmas,
                        latent_image=latent)[0]
    with clock.region("decode"):
        (video,) = call_node("DisPoseMimicMotionDecode", mimicmotion_model=units, latent=out,
                             decode_chunk_size=SETTINGS["decode_chunk"], keep_reference_frame=False)
    skipped = [EASYCACHE_SKIPPED.search(m) for m in messages]
    found = [m for m in skipped if m]
    report = {"s_per_step_after_first": after_first_step(calls, sizes["steps"])}
    if found:
        report["easycache_steps_skipped"] = f"{found[-1][1]}/{found[-1][2]}"
    return video, report
