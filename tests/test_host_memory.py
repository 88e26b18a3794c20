"""Peak memory of the main workflow against video length, inside a real ComfyUI (issue 16's target).

The committed ``workflows/dispose_mimicmotion_api.json`` runs on the tiny models in a fresh server
per length (``bench/bench_comfy_memory.py``), so the server's VmHWM (peak resident memory, from
/proc) is the peak of that one run: a 40-frame and a 200-frame 30 fps 720p driving clip (a phone
clip's size: decoding is part of the cost), of which the official stride 2 keeps 20 and 100 frames.
Only settings that change the run time differ from the committed workflow: resolution 384 (a
640x384 canvas for the portrait reference), one denoising step, one DIFT ensemble member.
The target: the peak grows by at most 16 bytes per canvas pixel per sampled frame (the animation
IMAGE alone is 12), i.e. 3.9 MB per frame here. This is a measurement, not a timing: with a fixed
glibc mmap threshold and PyTorch's attention the peak is the same to the MiB run after run.
"""
from __future__ import annotations

import pytest

from bench.bench_comfy_memory import canvas, peak_rss
from test_host_comfyui import CHECKOUT

pytestmark = pytest.mark.host

LENGTHS = (40, 200)  # source frames; stride 2 keeps half
RESOLUTION = 384
TARGET_BYTES_PER_PIXEL = 16
TARGET_VERSION = "0.33.0"


# Measured (2026-12-06, ComfyUI 0.33.0, 2 CPU cores): 14.7 B/px (2478 -> 2754 MiB), of which the animation
# IMAGE is 12 and CMP's 384x384 float16 flow 2.4 (its size does not follow the canvas). Before the per-tile
# sampler and the preview-free stage nodes: 17.7 B/px with the uint8 skeletons of every frame, 36.2 B/px at
# the 448x256 canvas with the previews too (1585 -> 1902 MiB, twice to the MiB). Each run's peak is in the
# VAE decode (chunks of 8 frames), where the chunk peaks climb by the decoded frames and nothing else.
@pytest.mark.timeout(2400)  # two full runs, 120 sampled frames in all
def test_peak_memory_grows_at_most_16_bytes_per_canvas_pixel_per_frame(tmp_path, tiny_models_dir):
    version = (CHECKOUT / "comfyui_version.py").read_text().split('__version__ = "')[1].split('"')[0]
    if version != TARGET_VERSION:  # two long runs; the target is set on one version
        pytest.skip(f"issue 16's memory target is measured on ComfyUI {TARGET_VERSION}, this is {version}")
    short, long = (peak_rss(tmp_path / f"instance-{n}", tiny_models_dir, n, resolution=RESOLUTION) for n in LENGTHS)
    frames = (LENGTHS[1] - LENGTHS[0]) // 2
    height, width = canvas(RESOLUTION)
    per_pixel = (long - short) / frames / (height * width)
    print(f"peak RSS {short / 2**20:.0f} MiB at {LENGTHS[0] // 2} frames, {long / 2**20:.0f} MiB at "
          f"{LENGTHS[1] // 2}: {(long - short) / frames / 1e6:.2f} MB = {per_pixel:.1f} B per canvas pixel per frame")
    assert per_pixel <= TARGET_BYTES_PER_PIXEL
