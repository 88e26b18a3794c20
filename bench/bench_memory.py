"""Activation memory of one sampler tile call (DisPose ControlNet + MimicMotion UNet), measured on CPU.

    python3 bench/bench_memory.py           # real SVD-xt / DisPose widths, bf16, 4 sizes (~3-6 min on 2 cores)
    python3 bench/bench_memory.py --quick   # narrow UNet, fp32, for a smoke run

What is measured: the peak resident memory (Linux VmHWM, reset with /proc/self/clear_refs after the
models and inputs exist; glibc's mmap threshold fixed so freed heap cannot hide tensors) of one CFG
tile call -- ControlNet forward, then UNet forward with its residuals; the second such call, after
a warm-up one -- minus the resident memory just before it, each size in a fresh subprocess. The weights
are the real architectures (MimicMotion UNet 320/640/1280/1280, DisPose ControlNet) with constant
values (built on the meta device and filled: no 2 B-parameter random init; values do not change
memory). A least-squares line through the sizes gives bytes per latent pixel of the CFG batch
(2 x tile frames x H/8 x W/8) per byte of the compute dtype; ``dispose_core/sampling/memory.py``
uses that coefficient. The ratio columns give each size's bytes per latent pixel over the smallest
size's, raw and after the fitted constant: near 1 after it means linear in the latent area (the
attention kernels run in linear memory); the constant is per call (on CPU mostly the backend's
weight reorders). The last line compares the slope with ComfyUI's generic estimate.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on shared cores

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispose_core.models.controlnet import ControlNetDims, HybridControlNet  # noqa: E402
from dispose_core.models.unet import MimicMotionUNet  # noqa: E402

REAL = dict(block_out_channels=(320, 640, 1280, 1280), num_attention_heads=(5, 10, 20, 20), cross_attention_dim=1024,
            addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, layers_per_block=2)
QUICK = dict(block_out_channels=(32, 64, 128, 128), num_attention_heads=(1, 2, 4, 4), cross_attention_dim=64,
             addition_time_embed_dim=16, projection_class_embeddings_input_dim=48, layers_per_block=2)
# (tile frames, height, width) in pixels; the CFG batch doubles the frames
SIZES = ((4, 64, 64), (4, 64, 128), (4, 128, 128), (8, 128, 128))


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _constant(module: torch.nn.Module) -> torch.nn.Module:
    module.to_empty(device="cpu")
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.01)
    return module.eval().requires_grad_(False)


def build(config: dict, dtype: torch.dtype) -> tuple[MimicMotionUNet, HybridControlNet]:
    """Built in ``dtype`` directly (no float32 copy to free: freed heap would hide the activations)."""
    torch.set_default_dtype(dtype)
    with torch.device("meta"):
        unet = MimicMotionUNet(**config)
        net = HybridControlNet(unet.config, ControlNetDims())
    torch.set_default_dtype(torch.float32)
    return _constant(unet), _constant(net)


def tile_call_inputs(unet, net, tile: int, height: int, width: int, dtype: torch.dtype):
    h, w = height // 8, width // 8
    c0 = unet.config.block_out_channels[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, tile, 8, h, w, generator=g).to(dtype)
    ctx = torch.randn(2, 1, unet.config.cross_attention_dim, generator=g).to(dtype)
    ids = torch.tensor([[6.0, 127.0, 0.0]] * 2, dtype=dtype)
    pose = torch.randn(2 * tile, c0, h, w, generator=g).to(dtype)
    motion = torch.randn(tile, c0, h, w, generator=g).to(dtype)
    points = [torch.randn(tile, c, height // r, width // r, generator=g).to(dtype)
              for c, r in zip(unet.config.block_out_channels, net.level_rates())]
    return x, torch.tensor(0.5, dtype=dtype), ctx, ids, pose, motion, points


def child(args) -> None:
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    unet, net = build(QUICK if args.quick else REAL, dtype)
    x, t, ctx, ids, pose, motion, points = tile_call_inputs(unet, net, args.tile, args.height, args.width, dtype)

    def call() -> None:
        with torch.no_grad():
            down, mid = net(x, t, ctx, ids, motion, points)
            unet(x, t, ctx, ids, pose_latents=pose, down_block_additional_residuals=down,
                 mid_block_additional_residual=mid)

    call()  # the first call also starts thread pools and kernels: measure a later step, as in sampling
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (VmHWM) to the current RSS
    base = _status_bytes("VmRSS")
    call()
    print(json.dumps({"activation_bytes": _status_bytes("VmHWM") - base}))


def measure(args, tile: int, height: int, width: int) -> int:
    cmd = [sys.executable, __file__, "--child", "--tile", str(tile), "--height", str(height), "--width", str(width),
           "--dtype", args.dtype, "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    # A fixed mmap threshold makes glibc map every large tensor freshly (and unmap it on free);
    # its default adaptive threshold serves them from freed, still-resident heap, hiding them from VmHWM.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["activation_bytes"]


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares bytes = a + b * latent_pixels."""
    xs = [r["latent_pixels"] for r in rows]
    ys = [r["activation_bytes"] for r in rows]
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default) or float32 (default with --quick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dtype = args.dtype or ("float32" if args.quick else "bfloat16")
    if args.child:
        child(args)
        return
    element = torch.empty(0, dtype=getattr(torch, args.dtype)).element_size()
    rows = []
    for tile, height, width in SIZES:
        pixels = 2 * tile * (height // 8) * (width // 8)
        rows.append({"tile": tile, "height": height, "width": width, "latent_pixels": pixels,
                     "activation_bytes": measure(args, tile, height, width)})
    intercept, slope = fit(rows)
    base = rows[0]["activation_bytes"] / rows[0]["latent_pixels"]
    net = lambda r: (r["activation_bytes"] - intercept) / r["latent_pixels"]  # noqa: E731
    print(f"{'tile':>4} {'HxW':>9} {'latent px (CFG)':>16} {'MiB':>8} {'B/px':>9} {'ratio':>6} "
          f"{'B/px - const':>13} {'ratio':>6}")
    for r in rows:
        per = r["activation_bytes"] / r["latent_pixels"]
        print(f"{r['tile']:>4} {r['height']:>4}x{r['width']:<4} {r['latent_pixels']:>16} "
              f"{r['activation_bytes'] / 2**20:>8.1f} {per:>9.0f} {per / base:>6.2f} {net(r):>13.0f} "
              f"{net(r) / net(rows[0]):>6.2f}")
    # ComfyUI's estimate for diffusion models (BaseModel.memory_required: latent area x dtype size x
    # 0.01 MiB), once per model run at once (ControlNet + UNet), what nodes/common.working_memory passes
    comfy = 2 * 0.01 * 2**20 * element
    print(f"measured / ComfyUI's estimate per latent pixel: {slope / comfy:.2f}")
    print(f"fit: bytes = {intercept / 2**20:.1f} MiB + {slope:.0f} B x latent_px  "
          f"-> {slope / element:.0f} B per latent pixel per byte of {args.dtype} "
          f"({'quick' if args.quick else 'real'} widths, {datetime.date.today()})")


if __name__ == "__main__":
    main()
