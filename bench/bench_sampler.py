"""Sampler benchmark: plain MimicMotion vs MimicMotion + DisPose control, one run, same config.

    python3 bench/bench_sampler.py            # 256x128 (H x W), 16 frames, best of 3 steps (~4-6 min on 2 cores)
    python3 bench/bench_sampler.py --quick    # smaller UNet and canvas, for a smoke run

Models: the real architectures (MimicMotion UNet, PoseNet, Hybrid ControlNet with the real motion
encoder widths and 1280-d keypoint embeddings) with a narrower UNet (64/128/256/256 channels
instead of 320/640/1280/1280) and random weights everywhere, so numbers are compute-bound but fit
a CPU. Rows:
  * seconds per denoising step (one tile of 16 frames, CFG batch of 2), plain vs control, best
    of ``--steps`` interleaved runs (the minimum filters out other load on a shared machine);
  * cost of the motion encoder + point adapter per tile call (run once for both CFG halves), as a
    share of one control step, next to what recomputing them for
    every tile call and both CFG halves (the official pipeline) would add per step;
  * FLOPs of one tile call, (UNet + ControlNet) / UNet (torch FlopCounterMode), next to the
    measured time ratio, by wall clock and by this process's CPU time (which other processes on a
    shared machine do not inflate);
  * peak RSS (Linux VmHWM, reset after models and inputs were built) of a DisPose denoising run
    (1 step; decoding is left out: its peak depends on ``decode_chunk_size`` only) for two video
    lengths and two tile sizes, each in a fresh subprocess;
  * the same FLOP rows for the real SVD-xt / DisPose sizes at 1024x576 (counted under
    FakeTensorMode: shapes only, nothing computed).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on shared cores

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from diffusers import AutoencoderKLTemporalDecoder  # noqa: E402
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: E402

from dispose_core.models.controlnet import ControlNetDims, HybridControlNet  # noqa: E402
from dispose_core.models.posenet import PoseNet  # noqa: E402
from dispose_core.models.unet import MimicMotionUNet  # noqa: E402
from dispose_core.sampling.control import ControlInputs, tile_control_features  # noqa: E402
from dispose_core.sampling.sampler import sample_latents  # noqa: E402
from dispose_core.types import DenseFlow, MotionField, PointEmbeddings  # noqa: E402

CONFIGS = {
    "full": dict(channels=(64, 128, 256, 256), heads=(1, 2, 4, 4), context=128, height=256, width=128),
    "quick": dict(channels=(32, 32, 64, 64), heads=(1, 2, 2, 2), context=32, height=128, width=64),
}


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p[0].numel()))
    return module.eval()


def build(cfg: dict) -> tuple[SimpleNamespace, HybridControlNet]:
    ctx = cfg["context"]
    unet = _randomize(MimicMotionUNet(
        block_out_channels=cfg["channels"], num_attention_heads=cfg["heads"], cross_attention_dim=ctx,
        addition_time_embed_dim=32, projection_class_embeddings_input_dim=96, layers_per_block=2), 1)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 32, 64, 64), layers_per_block=1,
                                       down_block_types=("DownEncoderBlock2D",) * 4).eval()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, projection_dim=ctx, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, patch_size=32)).eval()
    models = SimpleNamespace(unet=unet, pose_net=_randomize(PoseNet(cfg["channels"][0]), 2), vae=vae,
                             image_encoder=clip, clip_mean=(0.48, 0.46, 0.41), clip_std=(0.27, 0.26, 0.28),
                             clip_size=(224, 224))
    controlnet = _randomize(HybridControlNet(unet.config, ControlNetDims()), 3)
    return models, controlnet


def inputs(frames: int, height: int, width: int, controlnet: HybridControlNet):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    poses = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    flow = lambda: torch.from_numpy(rng.normal(0, 3, (frames - 1, 2, height, width)).astype(np.float32))  # noqa: E731
    subset = np.where(rng.uniform(size=(frames, 18)) < 0.1, -1, 1).astype(np.float32)
    points = PointEmbeddings(torch.from_numpy(rng.normal(size=(18, 1280)).astype(np.float32)),
                             rng.uniform(0.05, 0.95, (frames, 18, 2)).astype(np.float32), subset)
    return reference, poses, ControlInputs(controlnet, MotionField(flow()), DenseFlow(flow()), points)


def timed_calls(models, reference, poses, control, steps: int, tile: int) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds of every tile call (ControlNet + UNet), measured from
    should_stop (just before the call) to progress (just after)."""
    marks: list[tuple[float, float]] = []
    out: list[tuple[float, float]] = []
    now = lambda: (time.perf_counter(), time.process_time())  # noqa: E731
    sample_latents(models, reference, poses, control=control, steps=steps, tile_size=tile, overlap=min(6, tile - 1),
                   should_stop=lambda: marks.append(now()),
                   progress=lambda done, total: out.append(tuple(b - a for a, b in zip(marks[-1], now()))))
    return out


def median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tile_call_flops(unet, controlnet, tile: int, height: int, width: int) -> tuple[float, float, float]:
    """FLOPs of one CFG tile call: UNet alone, ControlNet + UNet, and the motion encoder over
    ``tile`` frames (random features of the right shapes stand in for the cached ones)."""
    h, w = height // 8, width // 8
    x = torch.randn(2, tile, 8, h, w)
    t = torch.tensor(0.5)
    ctx = torch.randn(2, 1, unet.config.cross_attention_dim)
    ids = torch.tensor([[6.0, 127.0, 0.0]] * 2)
    pose = torch.randn(2 * tile, unet.config.block_out_channels[0], h, w)
    flow = torch.randn(1, tile - 1, 2, height, width)
    points = [torch.randn(tile, c, height // r, width // r)
              for c, r in zip(unet.config.block_out_channels, controlnet.level_rates())]
    with torch.no_grad():
        with FlopCounterMode(display=False) as motion:
            feature = controlnet.encode_motion(flow, flow)
        with FlopCounterMode(display=False) as plain:
            unet(x, t, ctx, ids, pose_latents=pose)
        with FlopCounterMode(display=False) as ctrl:
            down, mid = controlnet(x, t, ctx, ids, feature, points)
            unet(x, t, ctx, ids, pose_latents=pose, down_block_additional_residuals=down,
                 mid_block_additional_residual=mid)
    return plain.get_total_flops(), ctrl.get_total_flops(), motion.get_total_flops()


def real_size_flops(tile: int) -> tuple[float, float, float]:
    """``tile_call_flops`` for the real SVD-xt UNet / DisPose ControlNet at 1024x576, shapes only."""
    with FakeTensorMode():
        unet = MimicMotionUNet(block_out_channels=(320, 640, 1280, 1280), num_attention_heads=(5, 10, 20, 20),
                               cross_attention_dim=1024, addition_time_embed_dim=256,
                               projection_class_embeddings_input_dim=768, layers_per_block=2)
        return tile_call_flops(unet, HybridControlNet(unet.config, ControlNetDims()), tile, 1024, 576)


def official_recompute_seconds(control, tile: int, height: int, width: int) -> float:
    """What the official pipeline adds per tile call: motion encoder on both CFG halves' flows and
    the point adapter twice (our vectorised adapter; the official Python loops are slower still)."""
    net = control.controlnet
    d = control.dense_flow.flow[: tile - 1][None].expand(2, -1, -1, -1, -1)
    tr = control.motion_field.flow[: tile - 1][None].expand(2, -1, -1, -1, -1)
    p = control.points
    kp, sub = torch.as_tensor(p.keypoints[:tile]), torch.as_tensor(p.subset[:tile])

    def once():
        with torch.no_grad():
            net.encode_motion(d, tr)
            for _ in range(2):
                net.encode_points(p.ref_point_emb, kp, sub, height, width)

    return median_time(once, repeats=2)


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(args) -> None:
    cfg = CONFIGS[args.config]
    models, controlnet = build(cfg)
    reference, poses, control = inputs(args.frames, cfg["height"], cfg["width"], controlnet)
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark (VmHWM) to now
    base = _status_mb("VmRSS")
    sample_latents(models, reference, poses, control=control, steps=1, tile_size=args.tile,
                   overlap=min(6, args.tile - 1))
    print(json.dumps({"base_mb": base, "peak_mb": _status_mb("VmHWM")}))


def memory_row(args, frames: int, tile: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", "--frames", str(frames), "--tile", str(tile),
           "--config", args.config, "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def per_frame_mb(cfg: dict) -> float:
    """float32 MB that sampling keeps per frame: latents, their scaled copy, the new latents and the
    CFG accumulator (2 rows); pose, motion and point features exist only for the tile being run."""
    lh, lw = cfg["height"] // 8, cfg["width"] // 8
    return 5 * 4 * lh * lw * 4 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--tile", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs=2, default=(16, 48))
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.config = args.config or ("quick" if args.quick else "full")
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    cfg = CONFIGS[args.config]
    h, w, tile = cfg["height"], cfg["width"], args.tile
    models, controlnet = build(cfg)
    reference, poses, control = inputs(args.frames, h, w, controlnet)
    print(f"config: UNet channels {cfg['channels']}, {h}x{w} (HxW), {args.frames} frames, tile {tile}, "
          f"CFG batch 2, best of {args.steps} steps, float32 CPU, {args.threads} threads")

    timed_calls(models, reference, poses, control, 1, tile)  # warm-up
    plain, ctrl = [], []
    for _ in range(args.steps):  # interleaved, so load changes on a shared machine hit both alike
        plain += timed_calls(models, reference, poses, None, 1, tile)
        ctrl += timed_calls(models, reference, poses, control, 1, tile)
    tiles_per_step = len(plain) // args.steps
    step_plain, cpu_plain = (min(c[i] for c in plain) * tiles_per_step for i in (0, 1))
    step_ctrl, cpu_ctrl = (min(c[i] for c in ctrl) * tiles_per_step for i in (0, 1))

    per_tile = median_time(lambda: tile_control_features(control, torch.arange(tile), h, w)) * tiles_per_step
    official_per_step = official_recompute_seconds(control, tile, h, w) * tiles_per_step
    flops_plain, flops_ctrl, _ = tile_call_flops(models.unet, controlnet, tile, h, w)
    real_plain, real_ctrl, real_motion = real_size_flops(tile)

    rows = [
        ("s / step, MimicMotion", f"{step_plain:.3f}"),
        ("s / step, MimicMotion + DisPose", f"{step_ctrl:.3f}"),
        ("motion encoder + point adapter per tile call, once for both CFG halves (s / step)", f"{per_tile:.3f}"),
        ("  share of one control step", f"{100 * per_tile / step_ctrl:.2f} %"),
        ("  official: recomputed per tile call x2 CFG (s / step)",
         f"{official_per_step:.3f} ({100 * official_per_step / step_ctrl:.1f} % of a step)"),
        ("FLOPs per tile call, UNet (G)", f"{flops_plain / 1e9:.1f}"),
        ("FLOPs per tile call, ControlNet + UNet (G)", f"{flops_ctrl / 1e9:.1f}"),
        ("FLOP ratio (UNet + ControlNet) / UNet", f"{flops_ctrl / flops_plain:.3f}"),
        ("time ratio control / plain: wall clock", f"{step_ctrl / step_plain:.3f} "
         f"(/ FLOP ratio = {(step_ctrl / step_plain) / (flops_ctrl / flops_plain):.3f})"),
        ("time ratio control / plain: process CPU time", f"{cpu_ctrl / cpu_plain:.3f} "
         f"(/ FLOP ratio = {(cpu_ctrl / cpu_plain) / (flops_ctrl / flops_plain):.3f}; other load does not count)"),
        (f"real size 1024x576, tile {tile}: UNet / ControlNet+UNet per tile call (TFLOP)",
         f"{real_plain / 1e12:.1f} / {real_ctrl / 1e12:.1f}, ratio {real_ctrl / real_plain:.3f}"),
        (f"real size: motion encoder over one {tile}-frame tile (TFLOP)",
         f"{real_motion / 1e12:.2f} = {100 * real_motion / real_ctrl:.2f} % of the tile call "
         f"(official, per call x2 CFG: {100 * 2 * real_motion / real_ctrl:.2f} %)"),
    ]
    base = per_frame_mb(cfg)
    for frames in args.lengths:
        for t in (tile, tile // 2):
            m = memory_row(args, frames, t)
            rows.append((f"peak RSS, DisPose denoising, {frames} frames, tile {t} (MB)",
                         f"{m['peak_mb']:.0f} = {m['base_mb']:.0f} models+inputs + {m['peak_mb'] - m['base_mb']:.0f} sampling"))
    rows.append(("per-frame tensors kept while sampling (latents)",
                 f"{base:.2f} MB / frame"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
