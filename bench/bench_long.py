"""Peak resident memory of the whole pipeline (the command line) against the number of sampled frames.

    python3 bench/bench_long.py                        # 60, 240 and 600 sampled frames, 1 step
    python3 bench/bench_long.py --frames 20 40 60      # other lengths
    python3 bench/bench_long.py --repo /tmp/old-clone  # the same runs on another checkout (before/after)

Each length runs ``python3 -m dispose_core.demo`` (tiny random-weight models, every stage and the
sampler for real) in a fresh process on a synthetic 720p portrait driving clip at 30 fps (official
stride 2, so twice as many source frames as sampled ones) and a portrait reference, on a 576x1024
canvas. The peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (with ``STEADY_ALLOCATOR``); the slope is a least-squares
line through the lengths, in MB per sampled frame and in bytes per canvas pixel per sampled frame
(the unit of the issue's target, 16 B/px). A run whose RSS passes ``--max-rss-gib`` is stopped
(reported as ``>limit``) so a length that cannot fit does not starve the machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLIP_HW = (1280, 720)  # 720p portrait
CLIP_FPS = 30  # stride 2 x max(1, int(30 / 24)) = 2
CANVAS = (1024, 576)  # resolution 576 on a portrait reference
MB = 1e6
# glibc's default mmap threshold grows after large frees, so freed tensors then stay in the heap and the
# peak RSS of one run swings by hundreds of MB with timing; a fixed threshold returns every large
# buffer to the system when freed, so the peak is the live memory (the same to 1 MiB run after run)
STEADY_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def write_clip(path: Path, frames: int, size: tuple[int, int] = CLIP_HW) -> Path:
    """A portrait H.264 clip at 30 fps (720p by default; ``size`` (height, width)): a bright box
    (a 'person') moving over a gradient."""
    import av

    height, width = size
    background = np.linspace(30, 120, height, dtype=np.uint8)[:, None, None].repeat(width, 1).repeat(3, 2)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(CLIP_FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = background.copy()
            x = 200 + int(100 * np.sin(i / 10))
            frame[height * 15 // 64:height * 25 // 32, x:x + width * 5 // 12] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_reference(path: Path) -> Path:
    from PIL import Image

    image = np.full((*CANVAS, 3), 90, np.uint8)
    image[200:900, 150:430] = 220
    Image.fromarray(image).save(path)
    return path


def _watch(pid: int, limit: int, stopped: list[bool], done: threading.Event) -> None:
    """Kill ``pid`` once its resident memory passes ``limit`` bytes."""
    status = Path(f"/proc/{pid}/status")
    while not done.wait(0.2):
        try:
            rss = next(int(line.split()[1]) * 1024 for line in status.read_text().splitlines()
                       if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        if rss > limit:
            stopped.append(True)
            os.kill(pid, 9)
            return


def peak_rss(repo: Path, reference: Path, clip: Path, out: Path, steps: int, limit: int) -> tuple[float, float]:
    """(peak RSS in bytes or NaN if stopped at the limit, seconds) of one CLI run in a fresh process."""
    argv = [sys.executable, "-m", "dispose_core.demo", "--reference", str(reference), "--video", str(clip),
            "--resolution", str(CANVAS[1]), "--steps", str(steps), "--out", str(out)]
    start = time.time()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **STEADY_ALLOCATOR}
    proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stopped: list[bool] = []
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(proc.pid, limit, stopped, done), daemon=True)
    watcher.start()
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stopped:
        return float("nan"), time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"the run failed ({proc.returncode}):\n{output[-3000:]}")
    return usage.ru_maxrss * 1024.0, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 240, 600], help="sampled frames per run")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps (1 keeps it short)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose dispose_core runs")
    parser.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "dispose-bench-long",
                        help="folder where the synthetic clips are written once and reused")
    parser.add_argument("--max-rss-gib", type=float, default=16.0, help="stop a run whose RSS passes this")
    args = parser.parse_args()

    args.clips.mkdir(parents=True, exist_ok=True)
    reference = write_reference(args.clips / "reference.png")
    print(f"repo {args.repo}; canvas {CANVAS[0]}x{CANVAS[1]}, clip {CLIP_HW[0]}x{CLIP_HW[1]} at {CLIP_FPS} fps, "
          f"{args.steps} step(s)", flush=True)
    rows = []
    for sampled in args.frames:
        clip = args.clips / f"clip_{sampled}.mp4"
        if not clip.exists():
            write_clip(clip, 2 * sampled)
        with tempfile.TemporaryDirectory(prefix="bench-long-") as out:
            rss, seconds = peak_rss(args.repo, reference, clip, Path(out), args.steps, int(args.max_rss_gib * 2**30))
        rows.append((sampled, rss))
        shown = f">{args.max_rss_gib:g} GiB (stopped)" if np.isnan(rss) else f"{rss / 2**30:.2f} GiB"
        print(f"{sampled:5d} sampled frames: peak RSS {shown}  ({seconds:.0f} s)", flush=True)
    fitted = [(n, r) for n, r in rows if not np.isnan(r)]
    if len(fitted) >= 2:
        slope = np.polyfit([n for n, _ in fitted], [r for _, r in fitted], 1)[0]
        print(f"slope: {slope / MB:.1f} MB per sampled frame = {slope / (CANVAS[0] * CANVAS[1]):.1f} B per canvas "
              f"pixel per frame (target 16)")


if __name__ == "__main__":
    main()
