"""The sampler's memory policy in-process with ComfyUI (issue 10): one ModelPatcher per model, each
phase holds only its own models (``comfy.model_management.current_loaded_models``), ComfyUI's partial
load of the sample phase, fp8 weight storage, the out-of-memory advice and the noise/quirk switches."""
from __future__ import annotations

import shutil

import pytest
import torch

from dispose_core import errors
from host_utils import call_node, guidance_graph, load_pack, model_dirs

pytestmark = pytest.mark.comfy
FAST = dict(seed=1, steps=2, min_guidance=2.0, max_guidance=2.0, noise_aug=0.0, fps=7, motion_bucket_id=127,
            tile_size=6, overlap=2, decode_chunk_size=4)  # one tile: the 5 driving frames + reference
STRENGTHS = dict(strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.0, end_percent=1.0)
LOADER = dict(svd_folder="stable-video-diffusion-img2vid-xt-1-1", mimicmotion_checkpoint="MimicMotion_1-1.pth",
              precision="auto")


def _load(weight_dtype: str = "default", dispose_checkpoint: str = "DisPose.pth"):
    units, _ = call_node("DisPoseMimicMotionLoader", **LOADER, weight_dtype=weight_dtype)
    (net,) = call_node("DisPoseControlNetLoader", mimicmotion_model=units, dispose_checkpoint=dispose_checkpoint,
                       precision="auto")
    return units, net


def _control(graph, net):
    (control,) = call_node("DisPoseHybridControlNetApply", dispose_controlnet=net, motion_field=graph["motion"],
                           dense_flow=graph["flow"], point_embeddings=graph["points"], **STRENGTHS)
    return control


@pytest.fixture(scope="module")
def graph(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        g = guidance_graph(num_frames=5)
        g["mm"], g["cn"] = _load()
    g["control"] = _control(g, g["cn"])
    return g


def sample(graph, **kwargs) -> torch.Tensor:
    args = dict(mimicmotion_model=graph["mm"], reference_image=graph["reference"], poses=graph["poses"],
                control=graph["control"], **FAST)
    args.update(kwargs)
    frames, _ = call_node("DisPoseMimicMotionSampler", **args)
    return frames


@pytest.fixture(scope="module")
def full(graph) -> torch.Tensor:
    return sample(graph)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _loaded_ids() -> set[int]:
    import comfy.model_management as mm

    return {id(m.model.model) for m in mm.current_loaded_models}  # the weights: a MODEL clone shares them


@pytest.fixture(scope="module")
def core_units(tiny_models_dir):
    """The MimicMotion Loader with ComfyUI's own CLIP_VISION and VAE objects (from the host tests'
    test node, which builds them from the tiny single file) connected."""
    import sys

    from host_utils import REPO

    sys.path.insert(0, str(REPO / "tests" / "host_nodes"))
    import dispose_test_nodes

    with model_dirs(tiny_models_dir):
        clip_vision, vae = dispose_test_nodes.TinyCoreSVD().load("svd_xt_1_1.safetensors")
        units, _ = call_node("DisPoseMimicMotionLoader", **LOADER, clip_vision=clip_vision, vae=vae)
    return units


@pytest.mark.parametrize("sockets", ["ours", "core"])
def test_each_phase_holds_only_its_own_models(graph, full, core_units, sockets, monkeypatch):
    """CLIP vision is not loaded while sampling; the VAE only for encoding and decoding; nothing
    of the sampler stays loaded afterwards (ComfyUI would otherwise keep it until memory is short).
    The same with ComfyUI's own CLIP vision and VAE connected (their calls load them)."""
    nodes = load_pack().nodes.mimicmotion
    seen: dict[str, set[int]] = {}
    for phase, module, name in (("encode", nodes, "encode_reference"), ("sample", nodes.native, "sample"),
                                ("decode", nodes, "decode_video")):
        def spy(*args, _real=getattr(module, name), _phase=phase, **kwargs):
            before = _loaded_ids()  # ComfyUI's own models load inside the call: look after it too
            out = _real(*args, **kwargs)
            seen[_phase] = before | _loaded_ids()
            return out
        monkeypatch.setattr(module, name, spy)
    units = graph["mm"] if sockets == "ours" else core_units
    frames = sample(graph, mimicmotion_model=units)
    clip, vae, unet, net = (id(m.patcher.model) for m in (units.image_encoder, units.vae, units.denoiser, graph["cn"]))
    assert len({clip, vae, unet, net}) == 4  # one patcher per model
    assert {clip, vae} <= seen["encode"] and not {unet, net} & seen["encode"]
    assert {unet, net} <= seen["sample"] and not {clip, vae} & seen["sample"]
    assert vae in seen["decode"] and not {clip, unet, net} & seen["decode"]
    assert not {clip, vae, unet, net} & _loaded_ids()
    if sockets == "ours":
        assert torch.equal(frames, full)
    else:  # ComfyUI computes CLIP vision in fp16 on a CPU unless --fp32-text-enc: close, not equal
        assert 0 < _rel(frames, full) < 0.05


def test_partial_load_of_the_sample_phase(graph, full, monkeypatch):
    """ComfyUI's low-VRAM path (what load_models_gpu does when the UNet + ControlNet do not fit: a
    partial load under a byte budget; a CPU host never takes it by itself) on the sampler's own
    patchers: fewer weight bytes loaded, the same frames as the full load."""
    import comfy.model_management as mm

    units, net = graph["mm"], graph["cn"]
    castable = {id(units.denoiser.patcher.model), id(net.patcher.model)}  # the sampler loads a clone of the MODEL
    real, resident, asked = mm.load_models_gpu, {}, []

    def low_vram(models, memory_required=0, force_full_load=False, **kwargs):
        if not castable & {id(p.model) for p in models}:
            return real(models, memory_required=memory_required, force_full_load=force_full_load, **kwargs)
        asked.append((memory_required, force_full_load))
        for patcher in models:
            if any(m.model is patcher for m in mm.current_loaded_models):
                continue  # already loaded: load_models_gpu keeps it as it is
            loaded = mm.LoadedModel(patcher)
            loaded.model_load(lowvram_model_memory=patcher.model_size() // 3)
            mm.current_loaded_models.insert(0, loaded)
            resident[id(patcher.model)] = (patcher.loaded_size(), patcher.model_size())

    monkeypatch.setattr(mm, "load_models_gpu", low_vram)
    partial = sample(graph)
    # the measured tile estimate: 56.4 MiB + 3847 B x latent pixels of the CFG batch x 4 (fp32 on the CPU)
    # (then ComfyUI's sampling asks again with its own estimate, for the models already loaded)
    assert asked[0] == (int(56.4 * 2**20) + 3847 * (2 * 6 * 8 * 8) * 4, False)
    assert not any(full for _, full in asked)
    assert resident.keys() == castable
    assert all(0 < loaded <= total // 3 for loaded, total in resident.values())
    assert torch.equal(partial, full)
    assert not castable & _loaded_ids()


def test_fp8_weights_halve_storage_and_stay_close(tiny_models_dir, graph, full):
    from dispose_core.models.cast_layers import FP8, casting_layers, weight_bytes

    with model_dirs(tiny_models_dir):
        units, net = _load("fp8_e4m3fn")
    for model, base in ((units.denoiser.value.unet, graph["mm"].denoiser.value.unet), (net.value, graph["cn"].value)):
        assert {layer.weight.dtype for layer in casting_layers(model)} == {FP8}
        assert weight_bytes(model) < 0.4 * weight_bytes(base)  # fp32 on the CPU: 4 bytes -> 1 (+ norms, biases)
    frames = sample(graph, mimicmotion_model=units, control=_control(graph, net))
    rel = _rel(frames, full)
    print(f"fp8 vs default weights, frames: relative L2 {rel:.3f}")
    assert 0 < rel < 0.2


def test_fp8_controlnet_copies_the_unet_before_fp8(tiny_models_dir, tmp_path):
    """A DisPose file without the encoder copy (from_unet): the fp8 ControlNet equals the default one
    stored in fp8 afterwards, so the copy came from the UNet's loaded weights, not its fp8 storage."""
    from dispose_core.models.cast_layers import store_weights_fp8

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models, symlinks=True)
    path = models / "dispose" / "DisPose.pth"
    state = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith(("down_blocks.", "conv_in."))}, path)
    with model_dirs(models):
        _, default = _load()
        _, fp8 = _load("fp8_e4m3fn")
    expected = store_weights_fp8(default.value).state_dict()
    got = fp8.value.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(got[k].float(), expected[k].float()) for k in expected)
    assert torch.equal(fp8.value.conv_in.weight_scale, default.value.conv_in.weight_scale)


def test_out_of_memory_gives_our_advice_and_frees_the_phase(graph, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(load_pack().nodes.comfy_native, "sample", oom)
    with pytest.raises(errors.DeviceMemoryError) as err:
        sample(graph)
    message = str(err.value)
    assert "sample phase" in message
    assert all(word in message for word in ("tile_size", "fp8_e4m3fn", "resolution", "decode_chunk_size"))
    units = graph["mm"]
    assert not {id(units.denoiser.patcher.model), id(graph["cn"].patcher.model)} & _loaded_ids()


def test_other_errors_pass_unchanged(graph, monkeypatch):
    """On a CPU-only torch ComfyUI's OOM_EXCEPTION may be plain Exception: other errors keep their type."""
    monkeypatch.setattr(load_pack().nodes.comfy_native, "sample",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        sample(graph)


def test_batch_quirk_switch(graph, full):
    """Off: the corrected CFG-batch attention, a different result (a run option on a clone of the
    MODEL: the loader's MODEL keeps no option, so the next run is official again)."""
    fixed = sample(graph, official_batch_quirk=False)
    assert not torch.equal(fixed, full)
    assert torch.equal(sample(graph, official_batch_quirk=True), full)


def test_noise_device(graph, full, monkeypatch):
    """On the CPU both choices draw on the CPU (the same frames); on a CUDA device 'official' asks
    for a CUDA generator as the official script does, 'cpu' keeps the CPU one."""
    assert torch.equal(sample(graph, noise_device="cpu"), full)
    nodes = load_pack().nodes.mimicmotion
    made = []

    class Recorder:
        def __init__(self, device):
            made.append(torch.device(device))

        def manual_seed(self, seed):
            return self

    monkeypatch.setattr(nodes.bridge, "torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(nodes.torch, "Generator", Recorder)
    nodes.noise_generator("official", 3)
    nodes.noise_generator("cpu", 3)
    assert made == [torch.device("cuda", 0), torch.device("cpu")]
