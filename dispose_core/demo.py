"""The main job outside ComfyUI: animate the bundled synthetic sample through every stage.

    python3 -m dispose_core.demo [--models COMFYUI_MODELS_DIR] [--out output/demo]

Without ``--models`` it writes tiny random-weight models (dispose_core.tiny) and runs a smoke
run: every loader, stage and the sampler run for real, but the weights are random, so the video
is noise. With ``--models`` it loads the real checkpoints from a ComfyUI ``models`` folder. Each
stage is the same ``dispose_core.pipeline`` function the ComfyUI nodes call.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import pipeline
from .loading.layout import BY_KEY


def write_video(path: Path, images: torch.Tensor, fps: float) -> Path:
    """Write an IMAGE batch (float 0..1, (N, H, W, 3)) as H.264 mp4 with PyAV."""
    import av

    frames = pipeline.to_uint8(images)
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p needs even sizes
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            packet = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            container.mux(stream.encode(packet))
        container.mux(stream.encode())
    return path


def to_device(model: object, device: torch.device) -> object:
    """Move a loaded model (a module, or an object holding modules) to ``device``; the stages
    run where the weights are."""
    modules = [model] if isinstance(model, torch.nn.Module) else [
        v for v in vars(model).values() if isinstance(v, torch.nn.Module)]
    for module in modules:
        module.to(device)
    return model


def _search(models_dir: Path, key: str) -> Path:
    return pipeline.find_model_file(key, [models_dir / BY_KEY[key].folder])


class _Log:
    def __init__(self) -> None:
        self.start = time.time()

    def __call__(self, message: str) -> None:
        print(f"[demo {time.time() - self.start:6.1f}s] {message}", flush=True)

    def progress(self, stage: str):
        """A progress callback printing about ten lines per stage."""
        last = [-1]

        def report(done: int, total: int) -> None:
            step = max(1, total // 10)
            if done == total or done // step != last[0]:
                last[0] = done // step
                self(f"  {stage}: {done}/{total}")
        return report


def run(models_dir: Path, out_dir: Path, *, smoke: bool, frames: int, resolution: int, steps: int, seed: int,
        ensemble_size: int, dtype: torch.dtype, device: torch.device, log: _Log) -> Path:
    """Run every stage on the sample with the models in ``models_dir``; returns the animation's path."""
    from .sample import make_sample

    out_dir.mkdir(parents=True, exist_ok=True)
    sample = make_sample(num_frames=frames)
    reference = torch.from_numpy(sample.reference).float()[None] / 255.0
    driving = torch.from_numpy(sample.frames).float() / 255.0
    fps = float(sample.fps)
    log(f"sample: reference {tuple(sample.reference.shape)}, {len(sample.frames)} driving frames")

    if smoke:
        log("poses: random DWPose weights detect nothing meaningful, so the sample's ground-truth "
            "keypoints go through the POSE_KEYPOINT path (as from comfyui_controlnet_aux)")
        poses, skeletons = pipeline.poses_from_keypoints(sample.pose_keypoint, reference,
                                                         resolution=resolution)
    else:
        from .pose.dwpose import load_dwpose

        detector = load_dwpose(_search(models_dir, "dwpose_detector"), _search(models_dir, "dwpose_pose"))
        poses, skeletons = pipeline.extract_poses(detector, reference, driving, resolution=resolution,
                                                  progress=log.progress("DWPose"))
    log(f"poses: {poses.num_frames} frames (reference first) on a {poses.height}x{poses.width} canvas")

    motion, motion_preview = pipeline.sparse_motion(poses)
    log("sparse motion field done")

    from .motion.cmp import load_cmp

    cmp = to_device(load_cmp(_search(models_dir, "cmp"), dtype), device)
    flow, flow_preview = pipeline.dense_motion(cmp, reference, poses, progress=log.progress("CMP"))
    del cmp  # each stage's weights leave the device before the next stage loads

    from .loading.sd15 import load_dift

    dift = to_device(load_dift(_search(models_dir, "sd15"), dtype), device)
    points, points_preview = pipeline.point_embeddings(dift, reference, poses, ensemble_size=ensemble_size,
                                                       seed=seed, progress=log.progress("DIFT"))
    del dift

    from .loading.dispose import load_dispose_controlnet
    from .loading.mimicmotion import load_mimicmotion

    models = to_device(load_mimicmotion(_search(models_dir, "svd"), _search(models_dir, "mimicmotion"), dtype),
                       device)
    controlnet, report = load_dispose_controlnet(_search(models_dir, "dispose"), models.unet, dtype)
    to_device(controlnet, device)
    log(f"models loaded; DisPose ControlNet: {report}")
    control = pipeline.hybrid_control(controlnet, motion, flow, points)
    settings = pipeline.SamplerSettings(seed=seed, steps=steps)  # the sampler shrinks tiles to short videos
    video = pipeline.animate(models, reference, poses, control=control, settings=settings,
                             progress=log.progress("sampling"))

    written = [write_video(out_dir / "animation.mp4", video, fps)]
    for name, images in (("skeletons", skeletons), ("motion_field", motion_preview),
                         ("dense_flow", flow_preview), ("correspondence", points_preview)):
        written.append(write_video(out_dir / f"preview_{name}.mp4", images, fps))
    log("wrote:\n" + "\n".join(f"  {p.resolve()}" for p in written))
    if smoke:
        log("SMOKE RUN finished: random weights, so animation.mp4 is noise (the pipeline ran end to end).")
    return written[0]


def main(argv: list[str] | None = None) -> None:
    """Command line: smoke run by default, real models with ``--models``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=None,
                        help="a ComfyUI models folder with the real checkpoints (default: tiny random models)")
    parser.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder")
    parser.add_argument("--frames", type=int, default=None, help="driving frames (default 24, smoke 17)")
    parser.add_argument("--resolution", type=int, default=None, help="short side (default 576, smoke 256)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25, smoke 2)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None,
                        help="default: fp16 on CUDA, else fp32")
    args = parser.parse_args(argv)
    smoke = args.models is None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(
        args.precision, torch.float16 if device.type == "cuda" and not smoke else torch.float32)
    settings = dict(
        out_dir=args.out, smoke=smoke, frames=args.frames or (17 if smoke else 24),
        resolution=args.resolution or (256 if smoke else pipeline.RESOLUTION),
        steps=args.steps or (2 if smoke else pipeline.SamplerSettings().steps), seed=args.seed,
        ensemble_size=2 if smoke else pipeline.DIFT_ENSEMBLE_SIZE, dtype=dtype, device=device, log=_Log())
    if not smoke:
        run(args.models, **settings)
        return
    from .tiny import write_all

    with tempfile.TemporaryDirectory(prefix="dispose-tiny-models-") as tmp:
        write_all(tmp)
        settings["log"](f"SMOKE RUN: tiny models with RANDOM weights (written to {tmp}). Every stage runs "
                        "for real, but the video is noise. Pass --models <ComfyUI models dir> for a real "
                        "animation.")
        run(Path(tmp), **settings)


if __name__ == "__main__":
    main()
