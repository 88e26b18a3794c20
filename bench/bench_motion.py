"""Motion-side benchmark: ours vs the official code path, same inputs, one run.

    python3 bench/bench_motion.py                 # 16 and 64 frames (CPU: a few minutes, see below)
    python3 bench/bench_motion.py --quick         # 16 frames, official CMP on 4 frames only
    python3 bench/bench_motion.py --frames 16 32 --cmp-official-frames 8

Canvas 576x1024 (W x H). Rows:
  (a) sparse motion field: ``compute_motion_field`` vs the official path (pre-blur impulse maps +
      ``cv2.filter2D`` with the 2-D 199x199 kernel, frame by frame, float64);
  (b) CMP: seconds per driving frame, ours (reference encoded once, frames batched) vs one full
      network call per frame (the official ``get_cmp_flow`` loop), full-size network with the
      golden's random weights (real key names) or random init when the golden dir is absent;
  (c) pose post-processing, from bench/bench_pose.py.
Runtime on 2 CPU cores: about 1 min with --quick; the full run is dominated by the official CMP
path (~1 s per frame unloaded, so 80 frames ~ 2-3 min more).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispose_core.motion.cmp import CMPModel, load_cmp  # noqa: E402
from dispose_core.motion.dense_flow import compute_dense_flow, resize_flow  # noqa: E402
from dispose_core.motion.gaussian import _blur_matrix, gaussian_kernel_1d  # noqa: E402
from dispose_core.motion.sparse_field import compute_motion_field, step_impulses  # noqa: E402
from dispose_core.motion.sparse_flow import cmp_image, cmp_sparse_flow  # noqa: E402
from dispose_core.types import PoseSequence  # noqa: E402

HEIGHT, WIDTH = 1024, 576
GOLDEN = Path(os.environ.get("DISPOSE_GOLDEN_DIR", REPO.parent / "shared" / "reference" / "golden"))


def synthetic_poses(frames: int, seed: int = 0) -> PoseSequence:
    """A random-walk skeleton with ~10% invisible points (reference + frames-1 driving frames)."""
    rng = np.random.default_rng(seed)
    body = rng.uniform(0.2, 0.8, (1, 18, 2)) + np.cumsum(rng.normal(0, 0.01, (frames, 18, 2)), axis=0)
    subset = np.where(rng.uniform(size=(frames, 18)) < 0.1, -1, np.arange(18)[None]).astype(np.float32)
    zeros = np.zeros
    return PoseSequence(
        body=body.astype(np.float32), body_score=np.ones((frames, 18), np.float32), body_subset=subset,
        hands=zeros((frames, 2, 21, 2), np.float32), hands_score=zeros((frames, 2, 21), np.float32),
        faces=zeros((frames, 68, 2), np.float32), faces_score=zeros((frames, 68), np.float32),
        height=HEIGHT, width=WIDTH,
    )


def official_motion_field(poses: PoseSequence) -> np.ndarray:
    """Official path: dense (H, W, 2) float64 impulse map per step, then cv2.filter2D (199x199)."""
    imp = step_impulses(poses)
    g = gaussian_kernel_1d(199, 20.0).numpy()
    kernel = np.outer(g, g)
    out = np.zeros((imp.values.shape[0], 2, HEIGHT, WIDTH))
    values, rows, cols, keep = (x.numpy() for x in (imp.values, imp.rows, imp.cols, imp.keep))
    for k in range(values.shape[0]):
        drag = np.zeros((HEIGHT, WIDTH, 2))
        drag[rows[k][keep[k]], cols[k][keep[k]]] = values[k][keep[k]]
        out[k] = cv2.filter2D(drag, -1, kernel).transpose(2, 0, 1)
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_sparse(frames: int) -> tuple[str, ...]:
    poses = synthetic_poses(frames)
    compute_motion_field(synthetic_poses(2))  # warm-up
    _blur_matrix.cache_clear()  # the timed call includes building its (per canvas size) blur matrices
    ours, t_ours = timed(lambda: compute_motion_field(poses).fields())
    official, t_off = timed(lambda: official_motion_field(poses))
    diff = float(np.abs(ours.numpy() - official).max())
    steps = frames - 1
    return (f"sparse motion field, {frames} frames", f"{1e3 * t_ours / steps:.2f} ms/frame",
            f"{1e3 * t_off / steps:.1f} ms/frame", f"{t_off / t_ours:.0f}x", f"{diff:.1e}")


def full_size_cmp() -> tuple[CMPModel, str]:
    weights = GOLDEN / "cmp_random_weights.safetensors"
    if weights.is_file():
        return load_cmp(weights), "golden random weights"
    torch.manual_seed(0)
    return CMPModel().eval().requires_grad_(False), "random init"


def bench_cmp(model: CMPModel, frames: int, official_frames: int, batch_size: int) -> tuple[str, ...]:
    poses = synthetic_poses(frames, seed=frames)
    reference = torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    ours, t_ours = timed(lambda: compute_dense_flow(model, reference, poses, batch_size=batch_size).fields())

    n = min(official_frames, frames - 1)
    image = cmp_image(reference)[None]
    flow, mask = cmp_sparse_flow(poses).dense(0, n)

    def official():
        with torch.inference_mode():  # get_cmp_flow: one full network call per frame
            return torch.cat([resize_flow(model(image, flow[i:i + 1], mask[i:i + 1]), HEIGHT, WIDTH)
                              for i in range(n)])

    ref, t_off = timed(official)
    diff = (ours[:n] - ref).abs()
    per_ours, per_off = t_ours / (frames - 1), t_off / n
    return (f"CMP, {frames} frames (official on {n})", f"{per_ours:.3f} s/frame", f"{per_off:.3f} s/frame",
            f"{per_off / per_ours:.1f}x", f"{float(diff.max()):.1e} (mean {float(diff.mean()):.0e})")


def pose_rows(frames: int) -> list[tuple[str, ...]]:
    from bench_pose import pose_postprocess_rows  # next to this script, whose folder is on sys.path

    return [(f"pose: {name}, {frames} frames", f"{ms:.2f} ms/frame", "", "", "")
            for name, ms in pose_postprocess_rows(frames)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64], help="frame counts (incl. reference)")
    parser.add_argument("--quick", action="store_true", help="16 frames, official CMP on 4 frames")
    parser.add_argument("--cmp-official-frames", type=int, default=None,
                        help="driving frames run the official way (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="CMP frames per batch (ours)")
    parser.add_argument("--no-cmp", action="store_true", help="skip the CMP rows")
    args = parser.parse_args()
    frames = [16] if args.quick else args.frames
    official_frames = args.cmp_official_frames or (4 if args.quick else 10**9)

    print(f"canvas {WIDTH}x{HEIGHT} (WxH); torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; CPU cores {os.cpu_count()}")
    rows = [("stage", "ours", "official path", "speed-up", "max abs diff")]
    for f in frames:
        rows.append(bench_sparse(f))
    if not args.no_cmp:
        model, source = full_size_cmp()
        print(f"CMP: full-size network ({source}), float32, batch size {args.batch_size}")
        for f in frames:
            rows.append(bench_cmp(model, f, official_frames, args.batch_size))
    for f in frames:
        rows += pose_rows(f)
    notes = ["sparse diff: float32 vs the official float64 path (G1 tolerance 1e-5)."]
    if not args.no_cmp:
        notes.append("CMP diff: float32 rounding (batch size / kernel choice) amplified by the random-weight "
                     "network; G3 tolerance 0.034 px; float64 equality of the two paths is tested in "
                     "tests/test_cmp_model.py.")
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
