"""The main job outside ComfyUI: animate a reference image with a driving video, every stage.

    python3 -m dispose_core.demo [--models COMFYUI_MODELS_DIR] [--out output/demo]
    python3 -m dispose_core.demo --reference IMG --video VIDEO [--models DIR] [--stride 2]
        [--max-frames N] [--resolution 576] [--seed S] [--out DIR]

Without ``--reference``/``--video`` it animates the bundled synthetic sample. Without
``--models`` it writes tiny random-weight models (dispose_core.tiny) and runs a smoke run: every
loader, stage and the sampler run for real, but the weights are random, so the video is noise.
With ``--models`` it loads the real checkpoints from a ComfyUI ``models`` folder. A driving video
is sampled as the official run does (``dispose_core/frames.py``: every ``stride * max(1,
int(fps / 24))``-th frame) and the animation is written at the resulting fps. Each stage is the
same ``dispose_core.pipeline`` function the ComfyUI nodes call. Bad input ends with one error
line and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import pipeline
from .errors import DisposeError
from .limits import check_resolution, is_out_of_memory
from .frames import SAMPLE_STRIDE, FrameSampling
from .loading.layout import BY_KEY
from .media import write_video
from .pose.people import PERSON_CHOICES
from .pose.track import EMPTY_FRAMES


OUT_OF_MEMORY_ADVICE = ("Memory grows with the canvas area times the number of frames: lower --max-frames or "
                        "--resolution; on a GPU also --precision fp16.")


@dataclass
class Job:
    """What to animate: the reference IMAGE, the driving frames and the fps they play at."""

    reference: torch.Tensor  # (1, H, W, 3) float 0..1
    driving: Collection[np.ndarray]  # the kept frames, (H, W, 3) uint8 each (decoded as they are read)
    fps: float
    description: str
    pose_keypoint: list[dict] | None = None  # ground-truth poses, used on random DWPose weights


def sample_job(frames: int, with_keypoints: bool) -> Job:
    """The bundled synthetic sample (its frames are the driving frames as they are)."""
    from .sample import make_sample

    sample = make_sample(num_frames=frames)
    return Job(torch.from_numpy(sample.reference).float()[None] / 255.0, sample.frames, float(sample.fps),
               f"sample: reference {tuple(sample.reference.shape)}, {len(sample.frames)} driving frames",
               sample.pose_keypoint if with_keypoints else None)


def files_job(reference: Path, video: Path, sampling: FrameSampling) -> Job:
    """The user's reference image and driving video, the video sampled like the official run."""
    from .media import existing_file, read_image
    from .video import video_frames

    image = read_image(reference)
    frames = video_frames(existing_file(video, "driving video"), sampling)
    return Job(image, frames, frames.fps,
               f"reference {reference} {tuple(image.shape[1:3])}; video {video} at {frames.source_fps:g} fps: "
               f"{len(frames)} frames kept (stride {sampling.sample_stride} x max(1, int(fps/24)), "
               f"skip {sampling.skip_first_frames}, max {sampling.max_frames or 'all'}) -> {frames.fps:g} fps")


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


def run(models_dir: Path, out_dir: Path, job: Job, *, resolution: int, steps: int, seed: int,
        ensemble_size: int, dtype: torch.dtype, device: torch.device, log: _Log, smoke: bool = False,
        person: str = "official", person_index: int = 0, empty_frames: str = "official",
        retarget: bool = False, smooth_window: int = 0) -> Path:
    """Run every stage on ``job`` with the models in ``models_dir``; returns the animation's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference, driving, fps = job.reference, job.driving, job.fps
    log(job.description)

    if job.pose_keypoint is not None:
        log("poses: random DWPose weights detect nothing meaningful, so the sample's ground-truth "
            "keypoints go through the POSE_KEYPOINT path (as from comfyui_controlnet_aux)")
        poses = pipeline.poses_from_keypoints(
            job.pose_keypoint, reference, resolution=resolution, person=person, person_index=person_index,
            empty_frames=empty_frames, retarget=retarget, smooth_window=smooth_window)
    else:
        from .pose.dwpose import load_dwpose

        detector = load_dwpose(_search(models_dir, "dwpose_detector"), _search(models_dir, "dwpose_pose"))
        poses = pipeline.extract_poses(detector, reference, driving, resolution=resolution, person=person,
                                       person_index=person_index, empty_frames=empty_frames, retarget=retarget,
                                       smooth_window=smooth_window, progress=log.progress("DWPose"))
    log(f"poses: {poses.num_frames} frames (reference first) on a {poses.height}x{poses.width} canvas")
    if poses.note:
        log(poses.note)

    motion = pipeline.sparse_motion(poses)
    log("sparse motion field done")

    from .motion.cmp import load_cmp

    cmp = to_device(load_cmp(_search(models_dir, "cmp"), dtype), device)
    flow = pipeline.dense_motion(cmp, reference, poses, progress=log.progress("CMP"))
    del cmp  # each stage's weights leave the device before the next stage loads

    from .loading.sd15 import load_dift

    dift = to_device(load_dift(_search(models_dir, "sd15"), dtype), device)
    points = pipeline.point_embeddings(dift, reference, poses, ensemble_size=ensemble_size, seed=seed,
                                       progress=log.progress("DIFT"))
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
    video = pipeline.animation_chunks(models, reference, poses, control=control, settings=settings,
                                      progress=log.progress("sampling"))
    written = [write_video(out_dir / "animation.mp4", video, fps)]  # decoded chunk by chunk as it is written
    previews = {"skeletons": lambda: pipeline.skeleton_preview(poses),
                "motion_field": lambda: pipeline.field_preview(motion),
                "dense_flow": lambda: pipeline.field_preview(flow),
                "correspondence": lambda: pipeline.points_preview(points)}
    for name, draw in previews.items():  # drawn one at a time, each dropped once written
        written.append(write_video(out_dir / f"preview_{name}.mp4", draw(), fps))
    log(f"wrote {poses.num_frames - 1} animation frames at {fps:g} fps:\n" + "\n".join(f"  {p.resolve()}" for p in written))
    if smoke:
        log("SMOKE RUN finished: random weights, so animation.mp4 is noise (the pipeline ran end to end).")
    return written[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=None, help="reference image (default: the bundled sample)")
    parser.add_argument("--video", type=Path, default=None, help="driving video (default: the bundled sample)")
    parser.add_argument("--models", type=Path, default=None,
                        help="a ComfyUI models folder with the real checkpoints (default: tiny random models)")
    parser.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder")
    parser.add_argument("--stride", type=int, default=SAMPLE_STRIDE,
                        help="sample_stride: keep every stride * max(1, int(fps/24))-th video frame (official 2)")
    parser.add_argument("--max-frames", type=int, default=0, help="use at most N kept video frames (0 = all)")
    parser.add_argument("--skip-first-frames", type=int, default=0, help="drop the video's first N frames")
    parser.add_argument("--person", choices=PERSON_CHOICES, default="official",
                        help="official: highest detector score, everyone drawn; largest_tracked; by_index")
    parser.add_argument("--person-index", type=int, default=0, help="for --person by_index: 0 = leftmost")
    parser.add_argument("--empty-frames", choices=EMPTY_FRAMES, default="official",
                        help="frames without a detection: official (whole-image pose), interpolate, hold")
    parser.add_argument("--retarget", action="store_true",
                        help="after the official linear fit, give every bone the reference's length (not official)")
    parser.add_argument("--smooth-window", type=int, default=0,
                        help="smooth keypoints over this many frames (odd, 0 = off as officially; moves <= 8 px)")
    parser.add_argument("--frames", type=int, default=None, help="bundled sample only: frames (default 24, smoke 17)")
    parser.add_argument("--resolution", type=int, default=None, help="short side (default 576, smoke 256)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25, smoke 2)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None,
                        help="default: fp16 on CUDA, else fp32")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command line: the sample or the user's files; smoke run by default, real models with ``--models``.

    A DisposeError (bad file, no person, missing model) ends the run with its message and exit code 2,
    and so does running out of memory (CPU or GPU), with what to lower.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.reference is None) != (args.video is None):
        parser.error("give both --reference and --video, or neither (the bundled sample)")
    try:
        _main(args)
    except DisposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        print(f"error: out of memory ({str(exc).splitlines()[0]}). {OUT_OF_MEMORY_ADVICE}", file=sys.stderr)
        raise SystemExit(2) from None


def _main(args: argparse.Namespace) -> None:
    smoke = args.models is None
    log = _Log()
    if args.video is not None:
        sampling = FrameSampling(args.stride, args.max_frames, args.skip_first_frames)
        job = files_job(args.reference, args.video, sampling)
    else:
        job = sample_job(args.frames or (17 if smoke else 24), with_keypoints=smoke)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(
        args.precision, torch.float16 if device.type == "cuda" and not smoke else torch.float32)
    settings = dict(
        out_dir=args.out, job=job, smoke=smoke, resolution=args.resolution or (256 if smoke else pipeline.RESOLUTION),
        steps=args.steps or (2 if smoke else pipeline.SamplerSettings().steps), seed=args.seed,
        ensemble_size=2 if smoke else pipeline.DIFT_ENSEMBLE_SIZE, dtype=dtype, device=device, log=log,
        person=args.person, person_index=args.person_index, empty_frames=args.empty_frames,
        retarget=args.retarget, smooth_window=args.smooth_window)
    check_resolution(settings["resolution"])  # before the models are written or loaded
    if not smoke:
        run(args.models, **settings)
        return
    from .tiny import write_all

    with tempfile.TemporaryDirectory(prefix="dispose-tiny-models-") as tmp:
        write_all(tmp)
        log(f"SMOKE RUN: tiny models with RANDOM weights (written to {tmp}). Every stage runs "
            "for real, but the video is noise. Pass --models <ComfyUI models dir> for a real animation.")
        run(Path(tmp), **settings)


if __name__ == "__main__":
    main()
