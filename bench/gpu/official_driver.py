"""The official DisPose pipeline (lihxxx/DisPose at the pinned commit) timed per stage on one job.

    <official python> bench/gpu/official_driver.py --job DIR --weights DIR --device cuda|cpu --out FILE

Runs in the official environment (diffusers 0.27, transformers 4.44), started by bench/gpu/official.py,
which wrote the job folder. The official sources (``DISPOSE_REF``) are imported, never edited:

* Models are built from the job's configs with the official classes (``UNetSpatioTemporalConditionModel``,
  ``PoseNet``, ``ControlNetSVDModel.from_unet``, ``CMP``, ``SDFeaturizer``'s ``MyUNet2DConditionModel`` /
  ``OneStepSDPipeline``, ``Ctrl_Pipeline``) instead of the hub folders their constructors read, and
  given the state dicts our loaders were given. Every component's missing/unexpected keys are
  reported; CMP goes through the official checkpoint container and loader.
* The job then runs as ``inference_ctrl.py`` runs it (its preprocessing steps after DWPose: trajectory
  flow, CMP, DIFT; then ``Ctrl_Pipeline.__call__`` under fp16 autocast), timed per stage by wrapping
  methods in memory: cmp = sparse sampling + ``get_cmp_flow`` + resize back, dift =
  ``SDFeaturizer.forward``, encode = ``_encode_image`` + ``_encode_vae_image``, sample =
  ``_encode_pose_image`` + the denoising loop (``progress_bar``), decode = ``decode_latents``.
* Stand-ins only where this environment lacks a package the official modules import at module level
  (torchvision, av, matplotlib), and on a machine without CUDA the official ``.cuda()`` /
  ``torch.cuda.*`` calls become no-ops. Tiny widths: the point adapter and the pipeline's (18, 1280)
  keypoint buffer take the tiny DIFT width.

DWPose and the pose alignment are not run (no DWPose weights): the job carries the poses our nodes
extracted. Prints the result JSON and writes it to ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import types
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.gpu.clock import Clock  # noqa: E402

PHASES = ("cmp", "dift", "encode", "sample", "decode")
OFFICIAL_POINT_WIDTH = 1280  # the width the pipeline's keypoint buffer and PointAdapter() hard-code
CMP_CONFIG = "mimicmotion/modules/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow/config.yaml"
CMP_ITER = 42000
DIFT_PROMPT, DIFT_STEPS, DIFT_BLOCKS = "photo of a human", [261, 0], [1, 2]  # inference_ctrl.preprocess


class _Inert:
    """A transform object the official CMP builds and never applies."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __call__(self, *args, **kwargs):
        raise RuntimeError("torchvision stand-in (official_driver.py): this transform is not available here")


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    module.__dict__.update(attrs)
    return module


def install_stand_ins() -> list[str]:
    """Stand-ins for packages missing here that official modules import at module level; the ones replaced.

    Called after diffusers and transformers are imported, so they keep seeing torchvision as absent.
    """
    from bench.gpu.standins import install_missing

    replaced = install_missing(("av", "matplotlib"))
    if importlib.util.find_spec("torchvision") is None:
        transforms = _module("torchvision.transforms", Compose=_Inert, Normalize=_Inert)
        io = _module("torchvision.io", write_video=_Inert)
        sys.modules.update({"torchvision": _module("torchvision", transforms=transforms, io=io),
                            "torchvision.transforms": transforms, "torchvision.io": io})
        replaced.append("torchvision")
    return replaced


def cpu_patches(stack: ExitStack, device: torch.device) -> None:
    """On a machine without CUDA: the official hard-coded ``.cuda()`` and ``torch.cuda`` calls do nothing."""
    if device.type == "cuda":
        return
    for owner in (torch.nn.Module, torch.Tensor, torch.UntypedStorage):
        stack.enter_context(mock.patch.object(owner, "cuda", lambda self, *a, **k: self))
    for name in ("synchronize", "empty_cache"):
        stack.enter_context(mock.patch.object(torch.cuda, name, lambda *a, **k: None))
    stack.enter_context(mock.patch.object(torch.cuda, "device", lambda *a, **k: nullcontext()))


class _TorchWithPointWidth:
    """``torch`` as ``pipeline_ctrl`` sees it at tiny widths: its (18, 1280) keypoint buffer gets the
    DIFT width of the job (at real widths this is not installed)."""

    def __init__(self, width: int):
        self._width = width

    def __getattr__(self, name: str):
        return getattr(torch, name)

    def zeros(self, *size, **kwargs):
        if size == ((18, OFFICIAL_POINT_WIDTH),):
            size = ((18, self._width),)
        return torch.zeros(*size, **kwargs)


@contextmanager
def no_random_init():
    """Skip torch's random parameter init while the official classes are built: every tensor is then
    overwritten by our weights (the load reports any that are not), and at real widths drawing billions
    of values first would only cost budget."""
    names = ("kaiming_uniform_", "kaiming_normal_", "uniform_", "normal_", "xavier_uniform_", "xavier_normal_",
             "trunc_normal_", "orthogonal_")
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(torch.nn.init, name, lambda tensor, *a, **k: tensor))
        yield


def _load(module: torch.nn.Module, state: dict, report: dict, name: str) -> None:
    """``load_state_dict(strict=False)`` as the official loaders do, keeping what did not match."""
    result = module.load_state_dict(state, strict=False)
    report[name] = {"missing": sorted(result.missing_keys), "unexpected": sorted(result.unexpected_keys)}


def _read(weights: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(weights / f"{name}.safetensors"))


def build_pipeline(job: dict, weights: Path, report: dict):
    """``create_ctrl_pipeline`` from configs: MimicMotion parts, ControlNet from the UNet, Ctrl_Pipeline."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from mimicmotion.modules.controlnet import ControlNetSVDModel
    from mimicmotion.modules.point_adapter import PointAdapter
    from mimicmotion.modules.pose_net import PoseNet
    from mimicmotion.modules.unet import UNetSpatioTemporalConditionModel
    from mimicmotion.pipelines.pipeline_ctrl import Ctrl_Pipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    svd, dims = job["svd"], job["dims"]
    models = torch.nn.Module()  # the official MimicMotionModel's attribute names, for the checkpoint's prefixes
    models.unet = UNetSpatioTemporalConditionModel.from_config(svd["unet"])
    models.pose_net = PoseNet(noise_latent_channels=models.unet.config.block_out_channels[0])
    _load(models, _read(weights, "mimicmotion"), report, "mimicmotion")
    vae = AutoencoderKLTemporalDecoder.from_config(svd["vae"])
    _load(vae, _read(weights, "svd_vae"), report, "svd_vae")
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(svd["image_encoder"]))
    _load(image_encoder, _read(weights, "svd_image_encoder"), report, "svd_image_encoder")
    controlnet = ControlNetSVDModel.from_unet(models.unet,
                                              conditioning_embedding_out_channels=tuple(dims["motion_channels"]))
    official_adapter = (OFFICIAL_POINT_WIDTH, [320, 640, 1280, 1280], 128)
    tiny_adapter = (dims["point_embedding_channels"], list(models.unet.config.block_out_channels),
                    dims["point_mid_dim"])
    if tiny_adapter != official_adapter:
        controlnet.point_adapter = PointAdapter(embedding_channels=tiny_adapter[0], channels=tiny_adapter[1],
                                                mid_dim=tiny_adapter[2])
    _load(controlnet, _read(weights, "dispose"), report, "dispose")
    return Ctrl_Pipeline(vae=vae, image_encoder=image_encoder, unet=models.unet, controlnet=controlnet,
                         scheduler=EulerDiscreteScheduler.from_config(svd["scheduler"]),
                         feature_extractor=CLIPImageProcessor.from_dict(svd["feature_extractor"]),
                         pose_net=models.pose_net)


def build_featurizer(job: dict, weights: Path, device: torch.device, report: dict):
    """``SDFeaturizer`` as its constructor leaves it (fp16 variant, VAE decoder dropped, DDIM,
    attention slicing, empty-prompt embedding): models from the job's configs, tokenizer and scheduler
    config from the (tiny) SD 1.5 folder, the width-free parts of the real one."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from mimicmotion.utils.dift_utils import MyUNet2DConditionModel, OneStepSDPipeline, SDFeaturizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sd15 = job["sd15"]
    unet = MyUNet2DConditionModel.from_config(sd15["unet"])
    vae = AutoencoderKL.from_config(sd15["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(sd15["text_encoder"]))
    _load(unet, _read(weights, "sd15_unet"), report, "sd15_unet")
    _load(vae, _read(weights, "sd15_vae"), report, "sd15_vae")
    # the SD 1.5 file's names (transformers 5 drops the text_model. prefix from its own state dicts)
    text_state = {k if k.startswith("text_model.") else f"text_model.{k}": v
                  for k, v in _read(weights, "sd15_text_encoder").items()}
    _load(text_encoder, text_state, report, "sd15_text_encoder")
    pipe = OneStepSDPipeline(vae=vae.to(torch.float16), text_encoder=text_encoder.to(torch.float16),
                             tokenizer=CLIPTokenizer.from_pretrained(job["sd15_folder"], subfolder="tokenizer"),
                             unet=unet.to(torch.float16),
                             scheduler=DDIMScheduler.from_pretrained(job["sd15_folder"], subfolder="scheduler"),
                             safety_checker=None,
                             feature_extractor=None, requires_safety_checker=False)
    pipe.vae.decoder = None
    pipe = pipe.to(device)
    pipe.enable_attention_slicing()
    if device.type != "cuda":  # forward() asks for device 'cuda' by name
        encode_prompt = pipe.encode_prompt
        pipe.encode_prompt = lambda *args, device=None, **kwargs: encode_prompt(*args, device=pipe.device, **kwargs)
    featurizer = SDFeaturizer.__new__(SDFeaturizer)
    featurizer.pipe = pipe
    featurizer.null_prompt_embeds = pipe.encode_prompt(prompt="", device=device, num_images_per_prompt=1,
                                                       do_classifier_free_guidance=False)[0]
    return featurizer


def build_cmp(weights: Path, ref: Path, device: torch.device, report: dict):
    """The official ``CMP`` loaded by its own loader from a temporary experiment folder holding its
    config and our weights in the official checkpoint container (``module.``-prefixed keys)."""
    from mimicmotion.modules.cmp_model import CMP

    exp = Path(tempfile.mkdtemp(prefix="official_cmp_"))
    shutil.copy(ref / CMP_CONFIG, exp / "config.yaml")
    (exp / "checkpoints").mkdir()
    state = {f"module.{k}": v for k, v in _read(weights, "cmp").items()}
    torch.save({"state_dict": state, "step": CMP_ITER}, exp / "checkpoints" / f"ckpt_iter_{CMP_ITER}.pth.tar")
    cmp = CMP(str(exp / "config.yaml"), CMP_ITER).to(device)
    cmp.requires_grad_(False)
    own = set(cmp.model.model.state_dict())
    report["cmp"] = {"missing": sorted(own - set(state)), "unexpected": sorted(set(state) - own)}
    shutil.rmtree(exp)
    return cmp


@contextmanager
def stage_timers(pipeline, clock: Clock):
    """Time Ctrl_Pipeline's phases by wrapping its methods on this instance (nothing on disk changes)."""
    bar = pipeline.progress_bar

    @contextmanager
    def timed_bar(*args, **kwargs):
        with clock.region("sample"), bar(*args, **kwargs) as progress:
            yield progress

    wrapped = {"_encode_image": clock.timed("encode", pipeline._encode_image),
               "_encode_vae_image": clock.timed("encode", pipeline._encode_vae_image),
               "_encode_pose_image": clock.timed("sample", pipeline._encode_pose_image),
               "decode_latents": clock.timed("decode", pipeline.decode_latents), "progress_bar": timed_bar}
    with ExitStack() as stack:
        for name, fn in wrapped.items():
            stack.enter_context(mock.patch.object(pipeline, name, fn))
        yield


def run_job(job: dict, inputs: dict, models: dict, device: torch.device, clock: Clock) -> torch.Tensor:
    """inference_ctrl's preprocess (after DWPose) and run_pipeline on the job; the frames, frame 0 dropped."""
    import cv2
    import PIL.Image
    from mimicmotion.utils.utils import (bivariate_Gaussian, get_cmp_flow, points_to_flows, pose2track,
                                         sample_inputs_flow)

    sizes, settings = job["sizes"], job["settings"]
    ref_u8, poses_u8 = inputs["reference_u8"].numpy(), inputs["poses_u8"].numpy()
    frames, (height, width) = poses_u8.shape[0], ref_u8.shape[:2]
    points = [{"candidate": inputs["body"][f].numpy(), "subset": inputs["body_subset"][f].numpy()[None],
               "score": inputs["body_score"][f].numpy()[None]} for f in range(frames)]
    with clock.region("job"):
        traj = points_to_flows(points, frames, height, width)
        kernel = bivariate_Gaussian(kernel_size=settings["kernel_size"], sig_x=settings["sigma"],
                                    sig_y=settings["sigma"], theta=0, grid=None, isotropic=True)
        for f in range(frames - 1):
            traj[f] = cv2.filter2D(traj[f], -1, kernel)
        traj_flow = torch.from_numpy(traj).permute(0, 3, 1, 2).unsqueeze(0)
        with clock.region("cmp"):
            ref01 = torch.from_numpy(ref_u8).permute(2, 0, 1).float() / 255
            tracks, tracks_subset = (torch.from_numpy(a).permute(1, 0, 2) for a in pose2track(points, height, width))
            cond_image, sparse, _, first_384, sparse_384, mask_384 = sample_inputs_flow(
                ref01[None], tracks[None], tracks_subset[None])
            fb, fl, _, fh, fw = sparse.shape
            flow = get_cmp_flow(models["cmp"], first_384[None].repeat(1, fl, 1, 1, 1).to(device),
                                sparse_384.to(device), mask_384.to(device))
            if (fh, fw) != (384, 384):
                flow = F.interpolate(flow.flatten(0, 1), (fh, fw), mode="nearest").reshape(fb, fl, 2, fh, fw)
                flow[:, :, 0] *= fw / 384
                flow[:, :, 1] *= fh / 384
        with clock.region("dift"):
            dift_in = torch.from_numpy((ref_u8.transpose(2, 0, 1)[None] / 255.0 - 0.5) * 2).to(device, torch.float16)
            dift_feats = models["dift"].forward(dift_in, prompt=DIFT_PROMPT, t=DIFT_STEPS, up_ft_index=DIFT_BLOCKS,
                                                ensemble_size=sizes["ensemble"])
        pose_pixels = torch.from_numpy(poses_u8.transpose(0, 3, 1, 2).copy()) / 127.5 - 1
        generator = torch.Generator(device=device).manual_seed(settings["seed"])
        pipeline = models["pipeline"]
        with stage_timers(pipeline, clock), torch.autocast("cuda", enabled=device.type == "cuda"):
            video = pipeline(
                [PIL.Image.fromarray(ref_u8)], image_pose=pose_pixels, num_frames=frames, tile_size=sizes["tile"],
                tile_overlap=sizes["overlap"], height=height, width=width, fps=settings["fps"],
                controlnet_flow=flow, controlnet_image=cond_image, point_list=points, dift_feats=dift_feats,
                traj_flow=traj_flow, noise_aug_strength=settings["noise_aug"],
                num_inference_steps=sizes["steps"], generator=generator, min_guidance_scale=settings["guidance"],
                max_guidance_scale=settings["guidance"], decode_chunk_size=settings["decode_chunk"],
                output_type="pt", device=device).frames.cpu()
    return video[0, 1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", type=Path, required=True, help="job folder (bench/gpu/official.py)")
    parser.add_argument("--weights", type=Path, required=True, help="folder of the state dicts")
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    ref = Path(os.environ["DISPOSE_REF"])
    job = json.loads((args.job / "job.json").read_text())
    device = torch.device(args.device)

    # accelerate only serves from_pretrained / offload hooks, which this job does not use: hidden, so the
    # device (which has accelerate 1.x) runs the same code paths as the CPU environment (which has none)
    sys.modules["accelerate"] = None
    import diffusers  # noqa: F401  (before the stand-ins: it must keep seeing torchvision as absent)
    import transformers  # noqa: F401
    from safetensors.torch import load_file

    replaced = install_stand_ins()
    sys.path.insert(0, str(ref))
    from mimicmotion.utils.geglu_patch import patch_geglu_inplace
    import mimicmotion.pipelines.pipeline_ctrl as pipeline_ctrl

    patch_geglu_inplace()  # as inference_ctrl.py does at import
    fp16 = job["precision"] == "fp16"  # the official run's default; any other mode: its --no_use_float16 path
    torch.set_default_dtype(torch.float16 if fp16 else torch.float32)
    clock, report = Clock(device), {}
    inputs = load_file(str(args.job / "inputs.safetensors"))
    with ExitStack() as stack, torch.no_grad():
        cpu_patches(stack, device)
        if job["dims"]["point_embedding_channels"] != OFFICIAL_POINT_WIDTH:
            stack.enter_context(mock.patch.object(pipeline_ctrl, "torch",
                                                  _TorchWithPointWidth(job["dims"]["point_embedding_channels"])))
        with clock.region("load"), no_random_init():
            models = {"pipeline": build_pipeline(job, args.weights, report),
                      "dift": build_featurizer(job, args.weights, device, report),
                      "cmp": build_cmp(args.weights, ref, device, report)}
        models["pipeline"].set_progress_bar_config(disable=True)
        video = run_job(job, inputs, models, device, clock)
    frames, steps = video.shape[0], job["sizes"]["steps"]
    s = clock.seconds
    result = {
        "status": "ran", "height": int(video.shape[-2]), "width": int(video.shape[-1]), "frames": frames,
        "steps": steps, "dtype": str(torch.get_default_dtype()).removeprefix("torch."), "device": device.type,
        "finite": bool(torch.isfinite(video).all()),  # no weight left at its (skipped) random init
        "seconds": {k: s.get(k) for k in PHASES + ("job", "load")},
        "s_per_step": s["sample"] / steps, "s_per_frame": {k: s[k] / frames for k in ("sample", "job")},
        "peak_bytes": {p: clock.peak.get(p) for p in PHASES},
        "weights": {name: {k: len(v) for k, v in keys.items()} for name, keys in report.items()},
        "weights_unmatched": {name: keys for name, keys in report.items() if keys["missing"] or keys["unexpected"]},
        "stand_ins": replaced,
        "notes": [
            "dift = SDFeaturizer.forward; the reference keypoint lookup runs inside Ctrl_Pipeline.__call__ (job only)",
            "sample = _encode_pose_image (PoseNet, where __call__ leaves it: on the CPU on a first call) + the "
            "denoising loop; the model moves between phases inside __call__ count in job only",
            "CMP at the official widths (its classes hard-code them); in a smoke run ours is the tiny CMP",
            "DWPose and pose alignment not run: the poses our nodes extracted are the input",
        ],
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("status", "finite", "seconds", "weights")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
