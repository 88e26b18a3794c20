"""Peak resident memory of a ComfyUI server running the main example workflow, per video length.

    COMFYUI_PATH=<ComfyUI> <its python> bench/bench_comfy_memory.py --frames 40 200 --resolution 384
    COMFYUI_PATH=<ComfyUI> <its python> bench/bench_comfy_memory.py --frames 900 --clip 1920x1080  # 30 s 1080p

Each length starts a fresh server (tiny random-weight models, the pack linked in) and queues the
committed ``workflows/dispose_mimicmotion_api.json`` on a synthetic portrait clip at 30 fps of
``--frames`` source frames (the official stride 2 samples half of them). Only settings that change
the run time differ from the committed workflow: ``--resolution``, ``--steps``, one DIFT ensemble
member. The figure is the server's VmHWM after the run (peak resident memory, /proc), with
``bench_long.STEADY_ALLOCATOR`` and PyTorch's attention (``--use-pytorch-cross-attention``: ComfyUI's
default CPU attention sizes its chunks by the free memory, so its peak follows the machine, not the
job). ``tests/test_host_memory.py`` asserts issue 16's target with ``peak_rss``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench.bench_long import CLIP_HW, STEADY_ALLOCATOR, write_clip  # noqa: E402
from host_utils import ComfyServer  # noqa: E402
from test_host_comfyui import CHECKOUT, REFERENCE_HW, run_ok, saved_videos, video_shape, write_inputs  # noqa: E402

SERVER_ARGS = ("--use-pytorch-cross-attention",)


def canvas(resolution: int) -> tuple[int, int]:
    """(H, W) of DWPose Extract's canvas for the tests' portrait reference (640x384 for 384)."""
    from dispose_core.image import target_size

    return target_size(*REFERENCE_HW, resolution)


def peak_rss(instance: Path, models: Path, frames: int, *, resolution: int, steps: int = 1, decode_chunk_size: int = 8,
             clip_size: tuple[int, int] = CLIP_HW, timeout: float = 3600) -> int:
    """VmHWM in bytes of a fresh server after one run of the main workflow on a ``frames``-frame clip."""
    server = ComfyServer(CHECKOUT, instance, models, extra_args=SERVER_ARGS, extra_env=STEADY_ALLOCATOR)
    try:
        write_inputs(instance / "input")
        write_clip(instance / "input" / "driving.mp4", frames, clip_size)
        prompt = json.loads((REPO / "workflows" / "dispose_mimicmotion_api.json").read_text())
        settings = {"DisPoseDWPoseExtractV2": {"resolution": resolution}, "DisPoseDIFTPointEmbedV2": {"ensemble_size": 1},
                    "DisPoseMimicMotionSampler": {"steps": steps, "decode_chunk_size": decode_chunk_size}}
        for node in prompt.values():
            node["inputs"].update(settings.get(node["class_type"], {}))
        entry = run_ok(server, prompt, timeout=timeout)
        (video,) = [f for f in saved_videos(server, entry) if "video/dispose_" in str(f)]
        if video_shape(video) != (frames // 2, *canvas(resolution)):
            raise RuntimeError(f"the animation is {video_shape(video)}, expected {(frames // 2, *canvas(resolution))}")
        status = Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="a models folder of the tiny factory "
                        "(python3 -m dispose_core.tiny <folder>)")
    parser.add_argument("--frames", type=int, nargs="+", default=[40, 200], help="source frames per run (30 fps)")
    parser.add_argument("--resolution", type=int, default=384)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--decode-chunk-size", type=int, default=8, help="frames per VAE call (official 8)")
    parser.add_argument("--clip", default="%dx%d" % CLIP_HW[::-1], help="driving clip size WxH (portrait if H > W)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.clip.split("x"))
    height_px, width_px = canvas(args.resolution)
    rows = []
    for frames in args.frames:
        with tempfile.TemporaryDirectory(prefix="bench-comfy-") as instance:
            rss = peak_rss(Path(instance), args.models, frames, resolution=args.resolution, steps=args.steps,
                           decode_chunk_size=args.decode_chunk_size, clip_size=(height, width))
        rows.append((frames // 2, rss))
        print(f"{frames} source frames ({frames // 2} sampled), {width}x{height} clip, canvas {height_px}x{width_px}: "
              f"peak RSS {rss / 2**20:.0f} MiB", flush=True)
    if len(rows) >= 2:
        (n0, r0), (n1, r1) = rows[0], rows[-1]
        per_frame = (r1 - r0) / (n1 - n0)
        print(f"growth: {per_frame / 1e6:.2f} MB per sampled frame = {per_frame / (height_px * width_px):.1f} B per "
              "canvas pixel per frame (target 16)")


if __name__ == "__main__":
    main()
