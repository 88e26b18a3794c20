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
DRIVING_RATE = 8  # fps of driving.mp4: stride 2 x max(1, int(8 / 24)) = 2 keeps frames 0, 2, 4, 6, 8
KEPT_FRAMES, KEPT_RATE = 5, 4
CLIPS = {"driving30.mp4": (30, 20), "driving60.mp4": (60, 20)}  # name: (fps, frames)
REFERENCE_HW = (96, 64)
# Small settings so the tiny random models finish in seconds on a CPU.
FAST = {
    "DisPoseDWPoseExtractV2": {"resolution": 64},
    "DisPoseDIFTPointEmbedV2": {"ensemble_size": 1},
    "DisPoseMimicMotionSampler": {"steps": 2, "tile_size": 8, "overlap": 2, "decode_chunk_size": 4},
    "DisPoseCMPDenseFlowV2": {"batch_size": 4},
}
FAST |= {"DisPoseDWPoseExtract": FAST["DisPoseDWPoseExtractV2"], "DisPoseDIFTPointEmbed": FAST["DisPoseDIFTPointEmbedV2"],
         "DisPoseCMPDenseFlow": FAST["DisPoseCMPDenseFlowV2"]}  # the first-release ids, in workflows saved before
# guidance_preview as saved before issue 16: the stage nodes' first-release ids and their preview outputs
SAVED_BEFORE_V2 = Path(__file__).parent / "data" / "guidance_preview_saved_before_v2_api.json"


def workflow(name: str, path: Path | None = None, **overrides: dict) -> dict:
    prompt = json.loads((path or REPO / "workflows" / f"{name}_api.json").read_text())
    for node in prompt.values():
        node["inputs"].update(FAST.get(node["class_type"], {}))
        node["inputs"].update(overrides.get(node["class_type"], {}))
    return prompt


def write_driving_video(path: Path, frames: int, rate: int) -> None:
    """A portrait mp4 with a bright box moving down, again every 9 frames (core LoadVideo needs a
    real video file; the tiny DWPose finds people in these frames)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 96, "yuv420p"
        for i in (k % DRIVING_FRAMES for k in range(frames)):
            frame = np.full((96, 64, 3), 20 * i, np.uint8)
            frame[10 + 5 * i:40 + 5 * i, 20:44] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_inputs(input_dir: Path) -> None:
    """A reference PNG, the short driving mp4 the workflows name and the 30/60 fps clips."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*REFERENCE_HW, 3), dtype=np.uint8)).save(input_dir / "reference.png")
    write_driving_video(input_dir / "driving.mp4", DRIVING_FRAMES, DRIVING_RATE)
    for name, (rate, frames) in CLIPS.items():
        write_driving_video(input_dir / name, frames, rate)


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


def video_rate(path: Path) -> float:
    """The average frame rate PyAV reads from a saved video's stream."""
    import av

    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)


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
    from test_nodes_schema import EXPECTED_NAMES, V1_NODES, expected_node

    info = server.get("/object_info")
    for node_id in V1_NODES:
        inputs, outputs, names = expected_node(node_id)
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
    ("dispose_mimicmotion", {"video/dispose": KEPT_FRAMES}),
    ("mimicmotion_plain", {"video/mimicmotion": KEPT_FRAMES}),
    ("guidance_preview", {"preview/skeletons": KEPT_FRAMES + 1, "preview/motion_field": KEPT_FRAMES,
                          "preview/dense_flow": KEPT_FRAMES, "preview/correspondence": KEPT_FRAMES + 1}),
])
def test_api_workflow_runs(server, name, expected):
    """The 9-frame 8 fps driving.mp4: the official stride 2 keeps 5 frames, saved at 8 / 2 = 4 fps
    (DWPose Extract's fps output feeds every CreateVideo)."""
    entry = run_ok(server, workflow(name))
    files = saved_videos(server, entry)
    assert len(files) == len(expected)
    for prefix, frames in expected.items():
        (path,) = [f for f in files if f"{prefix}_" in str(f)]
        count, height, width = video_shape(path)
        assert (height, width) == (64, 64)  # the canvas of a portrait reference at resolution 64
        assert count == frames, f"{path.name}: {count} frames"
        assert video_rate(path) == KEPT_RATE, path.name


@pytest.mark.parametrize("clip, frames, rate", [
    ("driving30.mp4", 10, 15.0),  # stride 2 x max(1, int(30 / 24)) = 2: frames 0, 2, ..., 18
    ("driving60.mp4", 5, 15.0),  # stride 2 x max(1, int(60 / 24)) = 4: frames 0, 4, ..., 16
])
def test_plain_workflow_samples_the_driving_video(server, clip, frames, rate):
    """20-frame clips at 30 and 60 fps through the plain workflow: the official frame count, and
    the saved animation plays at 15 fps, the official output rate, so it lasts as long as the clip."""
    entry = run_ok(server, workflow("mimicmotion_plain", LoadVideo={"file": clip}))
    (path,) = saved_videos(server, entry)
    assert video_shape(path)[0] == frames and video_rate(path) == rate


def test_a_workflow_saved_with_the_first_release_stage_nodes_runs(server):
    """The deprecated first-release ids still load and run, their preview outputs feeding videos:
    the same frames as the preview nodes of today's guidance_preview give."""
    prompt = workflow("guidance_preview (saved before V2)", SAVED_BEFORE_V2)
    assert {n["class_type"] for n in prompt.values()} >= {"DisPoseDWPoseExtract", "DisPoseSparseMotionField",
                                                          "DisPoseCMPDenseFlow", "DisPoseDIFTPointEmbed"}
    files = saved_videos(server, run_ok(server, prompt))
    expected = {"skeletons": KEPT_FRAMES + 1, "motion_field": KEPT_FRAMES, "dense_flow": KEPT_FRAMES,
                "correspondence": KEPT_FRAMES + 1}
    assert len(files) == len(expected)
    for name, frames in expected.items():
        (path,) = [f for f in files if f"preview/{name}_" in str(f)]
        assert video_shape(path) == (frames, 64, 64) and video_rate(path) == KEPT_RATE, path.name


def test_guidance_preview_plays_at_the_effective_fps(server):
    entry = run_ok(server, workflow("guidance_preview", LoadVideo={"file": "driving60.mp4"}))
    files = saved_videos(server, entry)
    assert len(files) == 4
    for path in files:
        frames = 6 if "skeletons" in path.name or "correspondence" in path.name else 5
        assert (video_shape(path)[0], video_rate(path)) == (frames, 15.0), path.name


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
    assert video_shape(video) == (KEPT_FRAMES, 64, 64)
    assert tuple(saved_frames(single_file_server, "ours").shape) == (KEPT_FRAMES, 64, 64, 3)
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
