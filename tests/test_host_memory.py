"""Peak memory of the main workflow against video length, inside a real ComfyUI (issue 16's target).

The committed ``workflows/dispose_mimicmotion_api.json`` runs on the tiny models in a fresh server
per length, so the server's VmHWM (peak resident memory, from /proc) is the peak of that one run:
a 40-frame and a 200-frame 30 fps 720p driving clip (a phone clip's size: decoding is part of the
cost), of which the official stride 2 keeps 20 and 100 frames. Only settings that change the run
time differ from the committed workflow: resolution 256 (a 448x256 canvas for the portrait
reference), one denoising step, one DIFT ensemble member.
The target: the peak grows by at most 16 bytes per canvas pixel per sampled frame (the animation
IMAGE alone is 12), i.e. 1.8 MB per frame here. This is a measurement, not a timing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_long import write_clip  # the benchmark's 720p portrait clip at 30 fps
from host_utils import REPO, ComfyServer
from test_host_comfyui import CHECKOUT, run_ok, saved_videos, video_shape, write_inputs

pytestmark = pytest.mark.host

LENGTHS = (40, 200)  # source frames; stride 2 keeps half
CANVAS = (448, 256)  # resolution 256 on the 96x64 portrait reference: long side int(256 / (9/16) // 64) * 64
TARGET_BYTES_PER_PIXEL = 16
TARGET_VERSION = "0.33.0"
SETTINGS = {"DisPoseDWPoseExtract": {"resolution": CANVAS[1]}, "DisPoseDIFTPointEmbed": {"ensemble_size": 1},
            "DisPoseMimicMotionSampler": {"steps": 1}}


def peak_rss(instance: Path, models: Path, frames: int) -> int:
    """VmHWM in bytes of a fresh server after one run of the main workflow on a ``frames``-frame clip."""
    server = ComfyServer(CHECKOUT, instance, models)
    try:
        write_inputs(instance / "input")
        write_clip(instance / "input" / "driving.mp4", frames)
        prompt = json.loads((REPO / "workflows" / "dispose_mimicmotion_api.json").read_text())
        for node in prompt.values():
            node["inputs"].update(SETTINGS.get(node["class_type"], {}))
        entry = run_ok(server, prompt, timeout=1800)
        (video,) = [f for f in saved_videos(server, entry) if "video/dispose_" in str(f)]
        assert video_shape(video) == (frames // 2, *CANVAS)
        status = Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    finally:
        server.stop()


# Not met reliably. With compact guidance, previews at most 256 px long, the decode writing into one
# IMAGE and uint8 pose conditioning, three runs on the idle machine (2026-12-06, ComfyUI 0.33.0) gave
# 5.6, 54.8 and 27.2 B/px per frame (20 frames: 2250, 2171, 2029 MiB; 100 frames: 2299, 2650,
# 2267 MiB); on the loaded machine 29-81 B/px; 115 B/px before compact guidance, 608 B/px before the
# VIDEO input. The peak is the highest of the sampler's tile-call swings (0.7-1.1 GB each), so one run
# varies by a few hundred MiB, more than the 80 frames' target growth (147 MB). Cached per frame
# before sampling: the four float32 previews, about 3.9 B/px each on this small canvas (0.75 B/px at
# 576x1024), and the 384x384 float16 dense flow, 5.1 B/px here (1 B/px at 576x1024).
# Not strict: a run under the target is reported (XPASS) without failing, as one run proves nothing.
@pytest.mark.xfail(strict=False, reason="issue 16: the peak varies by more than the target between runs; "
                                        "the stage previews are cached whether a graph uses them or not")
@pytest.mark.timeout(2400)  # two full runs, 120 sampled frames in all: 10-20 min on 2 busy CPU cores
def test_peak_memory_grows_at_most_16_bytes_per_canvas_pixel_per_frame(tmp_path, tiny_models_dir):
    version = (CHECKOUT / "comfyui_version.py").read_text().split('__version__ = "')[1].split('"')[0]
    if version != TARGET_VERSION:  # two 10-minute runs; the target is set on one version
        pytest.skip(f"issue 16's memory target is measured on ComfyUI {TARGET_VERSION}, this is {version}")
    short, long = (peak_rss(tmp_path / f"instance-{n}", tiny_models_dir, n) for n in LENGTHS)
    frames = (LENGTHS[1] - LENGTHS[0]) // 2
    per_pixel = (long - short) / frames / (CANVAS[0] * CANVAS[1])
    print(f"peak RSS {short / 2**20:.0f} MiB at {LENGTHS[0] // 2} frames, {long / 2**20:.0f} MiB at "
          f"{LENGTHS[1] // 2}: {(long - short) / frames / 1e6:.2f} MB = {per_pixel:.1f} B per canvas pixel per frame")
    assert per_pixel <= TARGET_BYTES_PER_PIXEL
