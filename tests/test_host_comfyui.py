"""Host tests: the pack inside a real ComfyUI server (marker ``host``).

Needs a ComfyUI checkout in COMFYUI_PATH and a Python that runs it with our requirements
(COMFYUI_PYTHON, else ``venv/`` inside or next to the checkout). Locally, with the CPU host built
by ../shared/comfy-host/setup.sh:

    /tmp/comfy-host/venv/bin/pip install diffusers==0.42.1 onnxruntime==1.31.1 onnx==1.23.2 \
        opencv-python-headless==4.13.0.92          # the pins of requirements.txt
    COMFYUI_PATH=/tmp/comfy-host/ComfyUI python3 -m pytest -m host tests/test_host_comfyui.py

The server runs on 127.0.0.1 on a free port with --cpu, its own --base-directory (this pack
linked into custom_nodes/, a models folder filled by dispose_core.tiny, a generated reference
image and driving video in input/). Without COMFYUI_PATH every test is skipped with that reason.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from host_utils import REPO, ComfyServer, comfy_checkout, messages

pytestmark = pytest.mark.host

CHECKOUT = comfy_checkout()

DRIVING_FRAMES = 9
REFERENCE_HW = (96, 64)
# Small settings so the tiny random models finish in seconds on a CPU.
FAST = {
    "DisPoseDWPoseExtract": {"resolution": 64},
    "DisPoseDIFTPointEmbed": {"ensemble_size": 1},
    "DisPoseMimicMotionSampler": {"steps": 2, "tile_size": 8, "overlap": 2, "decode_chunk_size": 4},
    "DisPoseCMPDenseFlow": {"batch_size": 4},
}


def workflow(name: str, **overrides: dict) -> dict:
    prompt = json.loads((REPO / "workflows" / f"{name}_api.json").read_text())
    for node in prompt.values():
        node["inputs"].update(FAST.get(node["class_type"], {}))
        node["inputs"].update(overrides.get(node["class_type"], {}))
    return prompt


def write_inputs(input_dir: Path) -> None:
    """A reference PNG and a short driving mp4 (core LoadVideo needs a real video file)."""
    import av
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*REFERENCE_HW, 3), dtype=np.uint8)).save(input_dir / "reference.png")
    with av.open(str(input_dir / "driving.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 96, "yuv420p"
        for i in range(DRIVING_FRAMES):
            frame = np.full((96, 64, 3), 20 * i, np.uint8)
            frame[10 + 5 * i:40 + 5 * i, 20:44] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def extra_cmp_dir(tmp_path_factory, tiny_models_dir) -> Path:
    """A CMP folder outside the models dir, named in an extra_model_paths.yaml."""
    extra = tmp_path_factory.mktemp("extra-models") / "my_cmp"
    extra.mkdir()
    shutil.copy(tiny_models_dir / "cmp" / "ckpt_iter_42000.pth.tar", extra / "cmp_extra.pth.tar")
    return extra


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir, extra_cmp_dir):
    instance = tmp_path_factory.mktemp("comfy-instance")
    yaml = instance.parent / "extra_model_paths.yaml"
    yaml.write_text(f"mine:\n    cmp: {extra_cmp_dir}\n")
    srv = ComfyServer(CHECKOUT, instance, tiny_models_dir, extra_args=("--extra-model-paths-config", str(yaml)))
    write_inputs(instance / "input")
    yield srv
    srv.stop()


def saved_videos(server: ComfyServer, entry: dict) -> list[Path]:
    files = []
    for output in entry["outputs"].values():
        for item in output.get("images", []):
            files.append(server.instance / item["type"] / item["subfolder"] / item["filename"])
    return files


def video_shape(path: Path) -> tuple[int, int, int]:
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), frames[0].shape[0], frames[0].shape[1]


def run_ok(server: ComfyServer, prompt: dict, timeout: float = 400) -> dict:
    entry = server.wait(server.queue(prompt), timeout)
    errors = messages(entry, "execution_error")
    assert entry["status"]["status_str"] == "success", json.dumps(errors)[:4000]
    return entry


def combo_options(info: dict, node_id: str, name: str) -> list[str]:
    """The choices of a V3 combo input in /object_info: ("COMBO", {"options": [...]})."""
    kind, opts = info[node_id]["input"]["required"][name]
    assert kind == "COMBO"
    return opts["options"]


def test_object_info_lists_every_node(server):
    """The server registered the pack through comfy_entrypoint, with the V1 release's inputs,
    defaults and outputs (so saved workflows keep working) and the frontend folder."""
    from test_nodes_schema import EXPECTED_NAMES, V1_NODES, current_inputs

    info = server.get("/object_info")
    for node_id, (_, outputs, names) in V1_NODES.items():
        inputs = current_inputs(node_id)
        assert node_id in info, f"{node_id} missing from /object_info:\n{server.log()[-3000:]}"
        node = info[node_id]
        assert node["display_name"] == EXPECTED_NAMES[node_id] and node["category"] == "DisPose"
        order = node["input_order"]
        assert order.get("required", []) + order.get("optional", []) == [name for name, *_ in inputs]
        for name, kind, optional, numbers in inputs:
            t, opts = node["input"]["optional" if optional else "required"][name]
            assert t == kind and {k: opts[k] for k in numbers} == numbers, (node_id, name)
        assert (tuple(node["output"]), tuple(node["output_name"])) == (outputs, names)
    assert "yolox_l.onnx" in combo_options(info, "DisPoseDWPoseLoader", "detector")
    # extra_model_paths.yaml entries are kept next to our models/cmp folder
    assert {"ckpt_iter_42000.pth.tar", "cmp_extra.pth.tar"} <= set(
        combo_options(info, "DisPoseCMPLoader", "cmp_checkpoint"))
    extensions = server.get("/extensions")
    assert any(url.startswith("/extensions/comfyui-dispose/") for url in extensions), extensions


def test_model_dropdown_shows_a_file_copied_in_while_running(server, extra_cmp_dir):
    new = extra_cmp_dir / "cmp_added_later.pth.tar"
    new.write_bytes(b"x")
    try:
        info = server.get("/object_info/DisPoseCMPLoader")
        assert "cmp_added_later.pth.tar" in combo_options(info, "DisPoseCMPLoader", "cmp_checkpoint")
    finally:
        new.unlink()


def test_model_files_route_is_registered(server):
    report = server.get("/dispose/models")
    assert report["total"] > 0 and {row["key"] for row in report["models"]} >= {"cmp", "dispose"}


@pytest.mark.parametrize("name, expected", [
    ("dispose_mimicmotion", {"video/dispose": DRIVING_FRAMES}),
    ("mimicmotion_plain", {"video/mimicmotion": DRIVING_FRAMES}),
    ("guidance_preview", {"preview/skeletons": DRIVING_FRAMES + 1, "preview/motion_field": DRIVING_FRAMES,
                          "preview/dense_flow": DRIVING_FRAMES, "preview/correspondence": DRIVING_FRAMES + 1}),
])
def test_api_workflow_runs(server, name, expected):
    entry = run_ok(server, workflow(name))
    files = saved_videos(server, entry)
    assert len(files) == len(expected)
    for prefix, frames in expected.items():
        (path,) = [f for f in files if f"{prefix}_" in str(f)]
        count, height, width = video_shape(path)
        assert (height, width) == (64, 64)  # the canvas of a portrait reference at resolution 64
        assert count == frames, f"{path.name}: {count} frames"


def test_missing_model_fails_with_our_message(server, extra_cmp_dir):
    prompt = workflow("guidance_preview", DisPoseCMPLoader={"cmp_checkpoint": "cmp_missing.pth.tar"})
    entry = server.wait(server.queue(prompt), 120)
    (error,) = messages(entry, "execution_error")
    assert error["node_type"] == "DisPoseCMPLoader"
    assert error["exception_type"].endswith("ModelFileError")
    message = error["exception_message"]
    assert "cmp_missing.pth.tar" in message and str(server.instance / "models" / "cmp") in message
    assert str(extra_cmp_dir) in message  # every searched folder is named
    assert "https://huggingface.co/MyNiuuu/MOFA-Video-Hybrid" in message


def test_changing_the_seed_reruns_only_the_sampler(server):
    run_ok(server, workflow("dispose_mimicmotion", DisPoseMimicMotionSampler={"seed": 7}))
    entry = run_ok(server, workflow("dispose_mimicmotion", DisPoseMimicMotionSampler={"seed": 8}))
    (cached,) = messages(entry, "execution_cached")
    ran = set(workflow("dispose_mimicmotion")) - set(cached["nodes"])
    classes = {workflow("dispose_mimicmotion")[n]["class_type"] for n in ran}
    assert classes == {"DisPoseMimicMotionSampler", "CreateVideo", "SaveVideo"}


def test_interrupt_during_sampling(server):
    base = workflow("dispose_mimicmotion")
    run_ok(server, base)  # everything before the sampler is cached afterwards
    slow = copy.deepcopy(base)
    sampler = next(n for n in slow.values() if n["class_type"] == "DisPoseMimicMotionSampler")
    sampler["inputs"].update(steps=200, seed=12345)
    prompt_id = server.queue(slow)
    deadline = time.time() + 60
    while not server.is_running(prompt_id):
        assert time.time() < deadline, "the prompt never started"
        time.sleep(0.1)
    time.sleep(2.0)  # upstream nodes are cached: this is inside the sampler's loop
    sent = time.time()
    server.post("/interrupt", {})
    entry = server.wait(prompt_id, 60)
    took = time.time() - sent
    assert messages(entry, "execution_interrupted"), entry["status"]
    assert messages(entry, "execution_interrupted")[0]["node_type"] == "DisPoseMimicMotionSampler"
    assert took < 15, f"interrupt took {took:.1f}s"
    print(f"POST /interrupt ended the sampler run in {took:.2f} s")
    sampler["inputs"].update(steps=2, seed=54321)
    run_ok(server, slow)


# ---------------------------------------------------------------- SVD as ComfyUI users have it (issue 10)
SINGLE_FILE = "checkpoints/svd_xt_1_1.safetensors"
TEST_NODES = REPO / "tests" / "host_nodes" / "dispose_test_nodes"


def models_without_svd_folder(tiny_models_dir: Path, into: Path) -> Path:
    """The tiny models dir (linked, not copied) minus the SVD diffusers folder."""
    from dispose_core.loading.layout import BY_KEY

    svd = BY_KEY["svd"]
    for entry in tiny_models_dir.iterdir():
        if entry.name != svd.folder:
            (into / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
            continue
        (into / entry.name).mkdir()
        for sub in entry.iterdir():
            if sub.name != svd.name:
                (into / entry.name / sub.name).symlink_to(sub, target_is_directory=sub.is_dir())
    return into


@pytest.fixture(scope="module")
def single_file_server(tmp_path_factory, tiny_models_dir):
    """A server whose models have svd_xt_1_1.safetensors in checkpoints/ and no SVD folder, with the
    test nodes; CLIP vision and VAE in float32 (ComfyUI's CPU default for CLIP is fp16) for parity."""
    models = models_without_svd_folder(tiny_models_dir, tmp_path_factory.mktemp("models-single-file"))
    instance = tmp_path_factory.mktemp("comfy-single-file")
    srv = ComfyServer(CHECKOUT, instance, models, extra_args=("--fp32-text-enc", "--fp32-vae"),
                      extra_nodes=(TEST_NODES,))
    write_inputs(instance / "input")
    yield srv
    srv.stop()


def single_file_prompt(name: str, core_sockets: bool) -> dict:
    """The main API workflow on the single file; with ``core_sockets`` the loader also gets ComfyUI's
    CLIP_VISION and VAE; the frames are saved unquantised as ``output/<name>.safetensors``."""
    prompt = workflow("dispose_mimicmotion", DisPoseMimicMotionLoader={"svd_folder": SINGLE_FILE})
    loader = next(k for k, n in prompt.items() if n["class_type"] == "DisPoseMimicMotionLoader")
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "DisPoseMimicMotionSampler")
    if core_sockets:
        prompt["100"] = {"class_type": "DisPoseTestTinyCoreSVD", "inputs": {"ckpt_name": "svd_xt_1_1.safetensors"}}
        prompt[loader]["inputs"].update(clip_vision=["100", 0], vae=["100", 1])
    prompt["101"] = {"class_type": "DisPoseTestSaveTensor", "inputs": {"images": [sampler, 0], "name": name}}
    return prompt


def saved_frames(server: ComfyServer, name: str):
    from safetensors.torch import load_file

    return load_file(str(server.instance / "output" / f"{name}.safetensors"))["images"]


def test_main_workflow_runs_on_the_single_file_without_svd_folder(single_file_server):
    assert not (single_file_server.instance / "models" / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1").exists()
    info = single_file_server.get("/object_info/DisPoseMimicMotionLoader")
    assert SINGLE_FILE in combo_options(info, "DisPoseMimicMotionLoader", "svd_folder")
    entry = run_ok(single_file_server, single_file_prompt("ours", core_sockets=False))
    (video,) = [f for f in saved_videos(single_file_server, entry) if "video/dispose_" in str(f)]
    assert video_shape(video) == (DRIVING_FRAMES, 64, 64)
    assert tuple(saved_frames(single_file_server, "ours").shape) == (DRIVING_FRAMES, 64, 64, 3)
    assert "SVD single file 'svd_xt_1_1.safetensors'" in single_file_server.log()  # the load report


def test_core_vae_and_clip_vision_sockets_match_our_path(single_file_server):
    """ComfyUI's own CLIP vision (fed our SVD preprocessing) and VAE (its encode/decode) give the
    frames of our modules on the same weights, within the M5 decode tolerance (relative L2 1e-4)."""
    import torch

    run_ok(single_file_server, single_file_prompt("ours", core_sockets=False))
    run_ok(single_file_server, single_file_prompt("core", core_sockets=True))
    ours, core = saved_frames(single_file_server, "ours"), saved_frames(single_file_server, "core")
    assert ours.shape == core.shape
    rel = float(torch.linalg.vector_norm(core - ours) / torch.linalg.vector_norm(ours))
    print(f"core sockets vs our VAE/CLIP: relative L2 {rel:.2e}")
    assert 0 < rel <= 1e-4 or torch.equal(core, ours)
