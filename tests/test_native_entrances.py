"""One denoiser, two entrances (issue 14): MimicMotion's MODEL sampled by core ComfyUI nodes equals the
one-node MimicMotion Sampler, with and without DisPose control, on the tiny models in fp32.

Both entrances run in-process in the ComfyUI of COMFYUI_PATH (0.3.64 and 0.33.0 in CI) through the
real node classes. The frames compared are floats (no 8-bit image files in between).
"""
from __future__ import annotations

import pytest
import torch

from host_utils import call_node, guidance_graph, model_dirs

pytestmark = pytest.mark.comfy
SEED, STEPS, MIN_CFG, MAX_CFG, TILE, OVERLAP = 3, 3, 1.0, 2.5, 4, 2  # 6 frames: 2 tiles per step
COND = dict(noise_aug=0.0, fps=7, motion_bucket_id=127)
STRENGTHS = dict(strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.0, end_percent=1.0)
TOLERANCE = 1e-4  # relative L2 on the frames (issue 14)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="module")
def graph(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        g = guidance_graph(num_frames=5)
        g["mm"], g["model"] = call_node("DisPoseMimicMotionLoader", svd_folder="stable-video-diffusion-img2vid-xt-1-1",
                                        mimicmotion_checkpoint="MimicMotion_1-1.pth", precision="fp32")
        (g["cn"],) = call_node("DisPoseControlNetLoader", mimicmotion_model=g["mm"], dispose_checkpoint="DisPose.pth",
                               precision="fp32")
    for key, window in (("control", {}), ("early", {"end_percent": 0.5})):  # early: the ControlNet at steps 0, 1 of 3
        (g[key],) = call_node("DisPoseHybridControlNetApply", dispose_controlnet=g["cn"], motion_field=g["motion"],
                              dense_flow=g["flow"], point_embeddings=g["points"], **{**STRENGTHS, **window})
    g["positive"], g["negative"], g["latent"] = call_node(
        "DisPoseMimicMotionConditioning", mimicmotion_model=g["mm"], reference_image=g["reference"],
        poses=g["poses"], seed=SEED, **COND)
    return g


def _one_node(graph, control: bool | str, **extra) -> tuple[torch.Tensor, dict]:
    return call_node("DisPoseMimicMotionSampler", mimicmotion_model=graph["mm"], reference_image=graph["reference"],
                     poses=graph["poses"], seed=SEED, steps=STEPS, min_guidance=MIN_CFG, max_guidance=MAX_CFG,
                     tile_size=TILE, overlap=OVERLAP, decode_chunk_size=4, control=_control(graph, control),
                     **COND, **extra)


def _control(graph, control: bool | str):
    """None, the full-window control (True) or a named one ("early")."""
    return graph[control] if isinstance(control, str) else graph["control"] if control else None


def _core_model(graph, control: bool | str):
    """Loader MODEL -> MimicMotion Tiles -> (Apply DisPose Control) -> core VideoLinearCFGGuidance."""
    _core_nodes()
    from comfy_extras.nodes_video_model import VideoLinearCFGGuidance

    (model,) = call_node("DisPoseMimicMotionTiles", model=graph["model"], tile_size=TILE, overlap=OVERLAP)
    if control:
        (model,) = call_node("DisPoseApplyControl", model=model, control=_control(graph, control))
    return VideoLinearCFGGuidance().patch(model, MIN_CFG)[0]


def _decode(graph, latent: dict) -> torch.Tensor:
    (frames,) = call_node("DisPoseMimicMotionDecode", mimicmotion_model=graph["mm"], latent=latent,
                          decode_chunk_size=4, keep_reference_frame=False)
    return frames


@pytest.mark.parametrize("control", [False, True, "early"], ids=["mimicmotion", "dispose", "dispose_to_half"])
def test_core_ksampler_equals_the_mimicmotion_sampler(graph, control):
    """Core KSampler (euler, karras: the MODEL's sigma range 0.002..700) with core VideoLinearCFGGuidance
    against the MimicMotion Sampler. Same noise, honestly: the sampler's ``noise_draw=ksampler`` draws
    what core KSampler draws for the seed (``comfy.sample.prepare_noise``); the sigmas differ by core's
    float32 Karras against the official float64 one."""
    core_nodes = _core_nodes()

    frames, latent = _one_node(graph, control, noise_draw="ksampler")
    pose_calls = []
    hook = graph["mm"].denoiser.value.pose_net.register_forward_hook(lambda *_: pose_calls.append(1))
    try:
        (core,) = core_nodes.KSampler().sample(_core_model(graph, control), SEED, STEPS, MAX_CFG, "euler", "karras",
                                               graph["positive"], graph["negative"], graph["latent"])
    finally:
        hook.remove()
    # PoseNet per tile call on that tile's frames (as officially; the uncond half gets zeros): 3 steps x 2 tiles
    assert len(pose_calls) == STEPS * 2
    ours = _decode(graph, core)
    rel = _rel(ours, frames)
    print(f"KSampler vs MimicMotion Sampler (control {control}): frames rel L2 {rel:.2e}, "
           f"latents {_rel(core['samples'], latent['samples']):.2e}")
    assert frames.shape == ours.shape == (5, 64, 64, 3)
    assert rel < TOLERANCE
    assert not torch.equal(latent["samples"], _one_node(graph, control)[1]["samples"])  # the noise draws differ
    if control == "early":  # the window maps sigmas to steps: neither the full window nor no control
        assert _rel(frames, _one_node(graph, True, noise_draw="ksampler")[0]) > 1e-3
        assert _rel(frames, _one_node(graph, False, noise_draw="ksampler")[0]) > 1e-3


@pytest.mark.parametrize("control", [False, True], ids=["mimicmotion", "dispose"])
def test_sampler_custom_advanced_with_official_noise_equals_the_sampler(graph, control):
    """SamplerCustomAdvanced with the pack's official noise, sampler and sigmas and core's CFGGuider
    gives the one-node sampler's official run."""
    _core_nodes()
    from comfy_extras.nodes_custom_sampler import CFGGuider, SamplerCustomAdvanced

    frames, latent = _one_node(graph, control)
    (noise,) = call_node("DisPoseMimicMotionNoise", seed=SEED, tile_size=TILE)
    (sampler,) = call_node("DisPoseMimicMotionEuler")
    (sigmas,) = call_node("DisPoseMimicMotionScheduler", steps=STEPS)
    guider = _call(CFGGuider, model=_core_model(graph, control), positive=graph["positive"],
                   negative=graph["negative"], cfg=MAX_CFG)[0]
    out = _call(SamplerCustomAdvanced, noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                latent_image=graph["latent"])[0]
    rel = _rel(_decode(graph, out), frames)
    print(f"SamplerCustomAdvanced vs MimicMotion Sampler ({'DisPose' if control else 'MimicMotion'}): {rel:.2e}")
    assert rel < TOLERANCE


def _core_nodes():
    """ComfyUI's nodes.py (KSampler, VAEDecode; comfy_extras import it as ``nodes``), by file: with the
    repo root on sys.path (the README test puts it there) ``import nodes`` would find this pack's
    ``nodes`` package."""
    import importlib.util
    import sys

    from host_utils import comfy_checkout

    loaded = sys.modules.get("nodes")
    if loaded is None or not hasattr(loaded, "KSampler"):
        spec = importlib.util.spec_from_file_location("nodes", comfy_checkout() / "nodes.py")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules["nodes"] = loaded
        spec.loader.exec_module(loaded)
    return loaded


def _call(node: type, **kwargs) -> tuple:
    """A core node, V1 (0.3.64) or V3 (0.33.0)."""
    if hasattr(node, "FUNCTION"):
        return getattr(node(), node.FUNCTION)(**kwargs)
    return tuple(node.execute(**kwargs).result)


@pytest.mark.parametrize("control", [False, True], ids=["mimicmotion", "dispose"])
def test_the_sampler_node_equals_the_library_run(graph, control):
    """The node (ComfyUI's sampling of the MODEL) and the CLI's entrance (``pipeline.animate``, the path
    the golden cases check) on the same models and official noise."""
    import dataclasses
    from types import SimpleNamespace

    from dispose_core import pipeline

    units = graph["mm"]
    models = SimpleNamespace(image_encoder=units.image_encoder.value, vae=units.vae.value,
                             denoiser=units.denoiser.value)
    spec = dataclasses.replace(graph["control"], controlnet=graph["control"].controlnet.value) if control else None
    settings = pipeline.SamplerSettings(seed=SEED, steps=STEPS, min_guidance=MIN_CFG, max_guidance=MAX_CFG,
                                        tile_size=TILE, overlap=OVERLAP, decode_chunk_size=4, **COND)
    library = pipeline.animate(models, graph["reference"], graph["poses"], control=spec, settings=settings)
    frames, _ = _one_node(graph, control)
    assert _rel(frames, library) < TOLERANCE


def test_interrupt_between_tiles_of_a_core_sampler(graph):
    """The loader's MODEL checks ComfyUI's interrupt flag before every tile call (a core KSampler in
    process has no other interrupt point: its progress bar has no server hook here)."""
    import comfy.model_management as mm
    core_nodes = _core_nodes()

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            core_nodes.KSampler().sample(graph["model"], SEED, STEPS, MAX_CFG, "euler", "karras",
                                         graph["positive"], graph["negative"], graph["latent"])
    finally:
        mm.interrupt_current_processing(False)


def test_core_vae_decode_takes_the_sampler_latent(tiny_models_dir, graph):
    """The MimicMotion Sampler's LATENT holds raw VAE latents, as ComfyUI's: core VAE Decode with
    core's SVD VAE gives the frames the sampler decoded with the same VAE (one decode chunk)."""
    import sys

    core_nodes = _core_nodes()

    from host_utils import REPO

    sys.path.insert(0, str(REPO / "tests" / "host_nodes"))
    import dispose_test_nodes

    with model_dirs(tiny_models_dir):
        clip_vision, vae = dispose_test_nodes.TinyCoreSVD().load("svd_xt_1_1.safetensors")
        units, _ = call_node("DisPoseMimicMotionLoader", svd_folder="stable-video-diffusion-img2vid-xt-1-1",
                             mimicmotion_checkpoint="MimicMotion_1-1.pth", precision="fp32", vae=vae)
    frames, latent = call_node(
        "DisPoseMimicMotionSampler", mimicmotion_model=units, reference_image=graph["reference"], poses=graph["poses"],
        seed=SEED, steps=STEPS, min_guidance=MIN_CFG, max_guidance=MAX_CFG, tile_size=TILE, overlap=OVERLAP,
        decode_chunk_size=8, **COND)
    (core,) = core_nodes.VAEDecode().decode(vae, latent)
    assert core.shape == (6, 64, 64, 3)
    assert _rel(core[1:], frames) < TOLERANCE


def test_nodes_change_copies_of_the_model_only(graph):
    """Tiles, control and the quirk switch go on clones: the loader's MODEL keeps none of them."""
    from dispose_core import errors

    (tiled,) = call_node("DisPoseMimicMotionTiles", model=graph["model"], tile_size=8, overlap=3,
                         official_batch_quirk=False)
    (controlled,) = call_node("DisPoseApplyControl", model=tiled, control=graph["control"])
    original = graph["model"].model_options.get("transformer_options", {})
    assert "mimicmotion_tiles" not in original and "dispose_control_spec" not in original
    assert "mimicmotion_batch_quirk" not in original and not graph["model"].get_additional_models()
    options = controlled.model_options["transformer_options"]
    assert options["mimicmotion_tiles"] == (8, 3) and options["mimicmotion_batch_quirk"] is False
    assert controlled.model is graph["model"].model  # the same weights
    # a clone of a clone (e.g. VideoLinearCFGGuidance after it) shares the ControlNet: 0.3.64 deep-copies options
    spec = controlled.clone().model_options["transformer_options"]["dispose_control_spec"].value
    assert spec.controlnet is graph["cn"].value
    with pytest.raises(errors.InputError, match="overlap"):
        call_node("DisPoseMimicMotionTiles", model=graph["model"], tile_size=4, overlap=4)
