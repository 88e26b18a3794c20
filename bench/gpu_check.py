"""The whole DisPose job on one GPU, per stage and mode, through the pack's nodes in ComfyUI.

    COMFYUI_PATH=<ComfyUI checkout> python bench/gpu_check.py [--budget-s 420] [--out gpu_check.json]
    COMFYUI_PATH=<ComfyUI checkout> python bench/gpu_check.py --smoke     # CPU, tiny widths, every mode

Models: the real architectures (MimicMotion UNet + PoseNet, DisPose ControlNet, SVD VAE, CLIP ViT-H,
SD 1.5 UNet for DIFT, CMP) with seeded random weights drawn on the device (bench/gpu/weights.py); the
smoke run uses the tiny models' widths. DWPose is left out: poses come from keypoint JSON (DWPose
Extract's POSE_KEYPOINT path), as no DWPose weights exist here. Each mode runs DWPose Extract,
Sparse Motion Field, CMP Dense Flow, DIFT Point Embed, Hybrid ControlNet Apply and MimicMotion
Sampler in-process with ComfyUI's model management (the TorchCompileModel and EasyCache modes sample
the loader's MODEL with core nodes instead: bench/gpu/sampling_paths.py; the attention modes build the
models with a named ComfyUI attention function: bench/gpu/attention.py); the official pipeline (lihxxx/DisPose) runs
in its own environment when ``DISPOSE_REF`` names its sources (bench/gpu/official.py).
See bench/gpu/README.md for the one device call.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import torch  # noqa: E402

from bench.gpu import official  # noqa: E402
from dispose_core.errors import InputError  # noqa: E402
from bench.gpu.clock import Clock  # noqa: E402
from bench.gpu.memory_model import phase_estimates  # noqa: E402
from bench.gpu.modes import (COMPILE_BACKEND, MODES, OVERLAP, SETTINGS, SMOKE_COMPILE_BACKEND,  # noqa: E402
                             SMOKE_DIFT_ENSEMBLE, SMOKE_EASYCACHE_STEPS, SMOKE_FRAMES, SMOKE_OVERLAP,
                             SMOKE_RESOLUTION, SMOKE_STEPS, SMOKE_TILE, STEPS, TILE, Mode)
from bench.gpu.report import STAGES, format_table  # noqa: E402

GIB = 2**30
PHASES = ("cmp", "dift", "encode", "sample", "decode")


def activate_comfy(checkout: Path, cpu: bool) -> None:
    """Import ComfyUI from ``checkout`` in this process (its own modules first on sys.path)."""
    from bench.gpu.standins import install_missing

    for name in install_missing():
        print(f"{name} is not installed: a stand-in module takes its place (bench/gpu/standins.py)")
    sys.path.insert(0, str(checkout))
    from comfy.cli_args import args

    args.cpu = cpu  # before comfy.model_management is imported
    import comfy.model_management  # noqa: F401


@contextmanager
def usable_vram(gib: float | None, device: torch.device):
    """Low-VRAM mode: ComfyUI keeps all but ``gib`` free (what ``--reserve-vram`` sets), so it partially loads."""
    import comfy.model_management as mm

    if gib is None or device.type != "cuda":
        yield
        return
    total = torch.cuda.get_device_properties(device).total_memory
    with mock.patch.object(mm, "EXTRA_RESERVED_VRAM", max(0, total - int(gib * GIB))):
        yield


def job_inputs(sizes: dict):
    """The job's reference IMAGE (portrait 1024x576 sample) and its poses from DWPose Extract
    (keypoint JSON input: no DWPose weights here), the same for ours and the official run."""
    from dispose_core.sample import make_sample
    from host_utils import call_node

    sample = make_sample(num_frames=sizes["frames"], ref_height=1024, ref_width=576, resolution=sizes["resolution"])
    ref = torch.from_numpy(sample.reference).float()[None] / 255
    poses, _, _ = call_node("DisPoseDWPoseExtractV2", reference_image=ref, resolution=sizes["resolution"], align=True,
                            pose_keypoint=sample.pose_keypoint, sample_stride=1)
    return ref, poses


def run_mode(mode: Mode, sizes: dict, device: torch.device, nodes, ref: torch.Tensor, poses) -> dict:
    """One job through the nodes; per stage seconds and peak memory, per phase the estimate."""
    from bench.gpu.attention import attention_in, building_with
    from bench.gpu.sampling_paths import core_sampler, one_node_sampler
    from dispose_core.image import target_size
    from host_utils import call_node

    frames = sizes["frames"]
    height, width = target_size(1024, 576, sizes["resolution"])
    clock = Clock(device)
    with clock.region("load"), building_with(mode.attention):
        units, model = call_node("DisPoseMimicMotionLoader", svd_folder=nodes.svd,
                                 mimicmotion_checkpoint=nodes.mimicmotion, precision=mode.precision,
                                 weight_dtype=mode.weight_dtype)
        controlnet = cmp_model = dift = None
        if mode.dispose:
            (controlnet,) = call_node("DisPoseControlNetLoader", mimicmotion_model=units,
                                      dispose_checkpoint=nodes.dispose, precision=mode.precision)
            (cmp_model,) = call_node("DisPoseCMPLoader", cmp_checkpoint=nodes.cmp, precision=mode.precision)
            (dift,) = call_node("DisPoseDIFTLoader", sd15_folder=nodes.sd15, precision=mode.precision)
    control = None
    with clock.region("job"):
        if mode.dispose:
            (motion,) = call_node("DisPoseSparseMotionFieldV2", poses=poses, kernel_size=SETTINGS["kernel_size"],
                                  sigma=SETTINGS["sigma"])
            with clock.region("cmp"):
                (flow,) = call_node("DisPoseCMPDenseFlowV2", cmp_model=cmp_model, reference_image=ref, poses=poses,
                                    batch_size=4)
            with clock.region("dift"):
                (points,) = call_node("DisPoseDIFTPointEmbedV2", dift_model=dift, reference_image=ref, poses=poses,
                                      ensemble_size=sizes["ensemble"], seed=0)
            (control,) = call_node("DisPoseHybridControlNetApply", dispose_controlnet=controlnet, motion_field=motion,
                                   dense_flow=flow, point_embeddings=points, strength=1.0, motion_strength=1.0,
                                   point_strength=1.0, start_percent=0.0, end_percent=1.0)
        if mode.core_sampler:
            video, patch_report = core_sampler(units, model, control, ref, poses, sizes, mode.model_patch, clock)
        else:
            video, patch_report = one_node_sampler(units, control, ref, poses, sizes, clock), {}
    if tuple(video.shape[:3]) != (frames, height, width):
        raise RuntimeError(f"{mode.name}: the sampler returned {tuple(video.shape)}, expected {frames} frames "
                           f"of {height}x{width}")
    usable = int(mode.usable_gib * GIB) if mode.usable_gib is not None and device.type == "cuda" else None
    estimate = phase_estimates(image_encoder=units.image_encoder.modules, vae=units.vae.modules,
                               unet=units.denoiser.value.unet,
                               sample_models=[units.denoiser.modules] + ([controlnet.modules] if controlnet else []),
                               height=height, width=width, tile=sizes["tile"], decode_chunk=SETTINGS["decode_chunk"],
                               cfg=True, usable_bytes=usable)
    s = clock.seconds
    return {
        "status": "ran", "attention": attention_in(*(m.modules for m in (units.denoiser, controlnet) if m)),
        "height": height, "width": width, "frames": frames, "steps": sizes["steps"],
        "seconds": {k: s.get(k) for k in STAGES + ("load",)},
        "s_per_step": s["sample"] / sizes["steps"], "s_per_frame": {k: (s[k] / frames if k in s else None)
                                                                    for k in ("sample", "job")},
        "peak_bytes": {p: clock.peak.get(p) for p in PHASES},
        "estimate_bytes": {phase: e.total for phase, e in estimate.items()},
        **patch_report,
    }


def release_memory() -> None:
    """Unload every model and empty the cache (before the official run, after a failed mode)."""
    import comfy.model_management as mm

    mm.unload_all_models()
    mm.soft_empty_cache()


def run_official(mode: Mode, sizes: dict, ref: torch.Tensor, poses, checkpoints, models_dir: Path,
                 device: torch.device, timeout_s: float) -> dict:
    """The official pipeline on the same job, weights and settings (bench/gpu/official.py), or why not."""
    from dispose_core.loading.layout import BY_KEY
    from dispose_core.pipeline import reference_on_canvas

    if official.availability():
        return {"status": f"skipped: {official.availability()}"}
    release_memory()  # the official process gets the GPU to itself
    reference = (reference_on_canvas(ref, poses) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    weights = models_dir / "official_weights"
    official.write_weights(weights, checkpoints)
    job = official.write_job(models_dir / f"official_{mode.name}", reference=reference, poses=poses, sizes=sizes,
                             settings=SETTINGS, checkpoints=checkpoints, precision=mode.precision,
                             sd15_folder=models_dir / "diffusers" / BY_KEY["sd15"].name)
    return official.run(job, weights, device, timeout_s)


class ModelNames:
    """The file and folder names the loader nodes are given (files of the tiny model folder)."""

    def __init__(self):
        from dispose_core.loading.layout import BY_KEY

        self.svd, self.sd15 = BY_KEY["svd"].name, BY_KEY["sd15"].name
        self.mimicmotion, self.dispose, self.cmp = (BY_KEY[k].name for k in ("mimicmotion", "dispose", "cmp"))


def environment(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d"),
            "total_bytes": torch.cuda.get_device_properties(device).total_memory if gpu else None}


def run_modes(args: argparse.Namespace, models_dir: Path, device: torch.device, started: float) -> dict:
    """Every mode in turn while the budget lasts; the result JSON's content."""
    from bench.gpu.attention import unavailable
    from bench.gpu.weights import random_weights, real_widths, tiny_widths
    from dispose_core.pipeline import DIFT_ENSEMBLE_SIZE
    from dispose_core.tiny import write_all
    from host_utils import model_dirs

    write_all(models_dir, only=["svd", "mimicmotion", "dispose", "cmp", "sd15"])  # names for the loaders
    widths = tiny_widths(models_dir) if args.smoke else real_widths()
    result = {"smoke": args.smoke, "environment": environment(device), "budget_s": args.budget_s, "modes": {}}
    per_frame_pixel = None  # seconds per frame-pixel of the first mode, to predict the next ones
    with model_dirs(models_dir), random_weights(widths, device) as checkpoints:
        for mode in MODES:
            sizes = {"resolution": mode.resolution, "frames": mode.frames, "steps": STEPS, "tile": TILE,
                     "overlap": OVERLAP, "ensemble": DIFT_ENSEMBLE_SIZE, "compile_backend": COMPILE_BACKEND}
            if args.smoke:
                steps = SMOKE_EASYCACHE_STEPS if mode.model_patch == "EasyCache" else SMOKE_STEPS
                sizes = {"resolution": SMOKE_RESOLUTION[mode.resolution], "frames": SMOKE_FRAMES[mode.frames],
                         "steps": steps, "tile": SMOKE_TILE, "overlap": SMOKE_OVERLAP,
                         "ensemble": SMOKE_DIFT_ENSEMBLE, "compile_backend": SMOKE_COMPILE_BACKEND}
            entry = {"mode": mode.__dict__.copy()}
            reason = unavailable(mode.attention) if mode.attention else None
            predicted = per_frame_pixel * mode.frames * mode.resolution ** 2 if per_frame_pixel else 0.0
            left = args.budget_s - (time.perf_counter() - started)
            if reason is None and predicted * (2 if mode.official else 1) > left:
                reason = f"budget: {left:.0f} s left, about {predicted:.0f} s needed"
            if reason:
                entry["status"] = f"skipped: {reason}"
            else:
                ref, poses = job_inputs(sizes)
                try:
                    with usable_vram(mode.usable_gib, device):
                        entry["ours"] = run_mode(mode, sizes, device, ModelNames(), ref, poses)
                    entry["status"] = "ran"
                except InputError as exc:  # the pack refuses the mode on this ComfyUI (e.g. 0.3.64's EasyCache)
                    entry["status"] = f"skipped: {(str(exc).splitlines() or [''])[0]}"
                    release_memory()
                except Exception as exc:  # noqa: BLE001 - one mode failing (OOM, a compiler) must not lose the rest
                    entry["status"] = f"failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
                    release_memory()
            if entry["status"] == "ran":
                job = entry["ours"]["seconds"]["job"] + entry["ours"]["seconds"]["load"]
                per_frame_pixel = per_frame_pixel or job / (mode.frames * mode.resolution ** 2)
                if mode.official:
                    left = args.budget_s - (time.perf_counter() - started)
                    entry["official"] = run_official(mode, sizes, ref, poses, checkpoints, models_dir, device,
                                                     timeout_s=max(left, 60.0))
            result["modes"][mode.name] = entry
            print(f"[{time.perf_counter() - started:6.1f} s] {mode.name}: {entry['status']}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny widths, every mode (CI)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop adding modes when this runs low")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary model folder (the official run's weight files and job folders: "
                             "about 8 GB at real widths); by default it is deleted at the end")
    args = parser.parse_args()
    checkout = os.environ.get("COMFYUI_PATH")
    if not checkout:
        parser.error("set COMFYUI_PATH to a ComfyUI checkout (bench/gpu/README.md)")
    started = time.perf_counter()
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    activate_comfy(Path(checkout), cpu=device.type == "cpu")

    models_dir = Path(tempfile.mkdtemp(prefix="gpu_check_models_"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` stops us: still delete the folder
    try:
        result = run_modes(args, models_dir, device, started)
    finally:
        if args.keep:
            print(f"kept {models_dir}")
        else:
            shutil.rmtree(models_dir, ignore_errors=True)
    result["elapsed_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(format_table(result))
    if official.availability():
        print(f"OFFICIAL COLUMN SKIPPED: {official.availability()}")
    for name, entry in result["modes"].items():
        if entry.get("official", {}).get("status", "ran").startswith("failed"):
            print(f"OFFICIAL {name}: {entry['official']['status']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
