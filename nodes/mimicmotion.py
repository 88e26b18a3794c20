"""MimicMotion Loader, DisPose ControlNet Loader, Hybrid ControlNet Apply, MimicMotion Sampler."""
from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.errors import DeviceMemoryError
from ..dispose_core.models.cast_layers import compute_placement
from ..dispose_core.models.units import ImageEncoder
from ..dispose_core.sampling.memory import tile_activation_bytes, vae_activation_bytes
from ..dispose_core.sampling.sampler import (EncodedReference, SamplingPlan, Ticker, decode_video, encode_reference,
                                             sampling_sigmas)
from ..dispose_core.sampling.video_model import TILE_HOOKS, TileHooks
from ..dispose_core.types import DenseFlow, MotionField, PointEmbeddings, PoseSequence
from . import comfy_bridge as bridge
from . import comfy_native as native
from .common import (SEED_MAX, Control, advanced, DisPoseControlNet, Flow, MimicMotionModel, Motion, Points,
                     folder_or_single_file_input, folder_or_single_file_path, model_input, model_path, poses_input,
                     precision_input, reference_input, schema, stage)

log = logging.getLogger(__name__)
_DEFAULTS = pipeline.SamplerSettings()
_CONTROL = pipeline.ControlInputs(None, None, None)  # for the default strengths


def _strength(name: str, default: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=10.0, step=0.05, tooltip=tooltip)


def _percent(name: str, default: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


@dataclass
class MimicMotionUnits:
    """What MimicMotion Loader hands on: each phase's model with its own ComfyUI patcher, so the
    sampler loads CLIP + VAE to encode, UNet + PoseNet (+ ControlNet) to sample, the VAE to decode."""

    image_encoder: bridge.Managed  # value: ImageEncoder (ours, or ComfyUI's CLIP vision with our preprocessing)
    vae: bridge.Managed  # value: diffusers temporal VAE, or ComfyUI's VAE behind bridge.CoreVAE
    denoiser: bridge.Managed  # value: Denoiser (UNet + PoseNet), castable layers; patcher: the native MODEL
    mimicmotion_path: Path  # where the UNet weights came from (the ControlNet's copy under fp8)
    fp8: bool  # UNet (and the ControlNet built from it) store their weights in float8_e4m3fn


def _weight_dtype_input() -> io.Combo.Input:
    return io.Combo.Input(
        "weight_dtype", options=list(bridge.WEIGHT_DTYPES), default="default", optional=True,
        tooltip="Storage of the UNet and DisPose ControlNet weights. default: the precision above (official). "
                "fp8_e4m3fn: 1 byte per weight (as ComfyUI's --fp8_e4m3fn-unet, which also selects it), upcast "
                "per layer to the precision above; halves their memory, costs some accuracy (see the README's "
                "Memory section).")


class MimicMotionLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionLoader", "MimicMotion Loader",
            "Loads SVD xt 1.1 (VAE, image encoder, UNet config) with MimicMotion's UNet and PoseNet weights; "
            "each model gets its own memory management.",
            inputs=[folder_or_single_file_input(
                        "svd_folder", "svd", "Stable Video Diffusion img2vid xt 1.1: the diffusers folder, or "
                                             "ComfyUI's single file svd_xt_1_1.safetensors (VAE and CLIP vision "
                                             "are read from it; its UNet part is not used).", (".safetensors",)),
                    model_input("mimicmotion_checkpoint", "mimicmotion", "MimicMotion 1.1 weights (UNet + PoseNet)."),
                    precision_input(),
                    io.Vae.Input("vae", optional=True,
                                 tooltip="Optional: ComfyUI's SVD VAE (e.g. Image Only Checkpoint Loader). Encoding "
                                         "and decoding then go through it, with ComfyUI's memory management and "
                                         "tiled fallback; empty: the VAE from svd_folder."),
                    io.ClipVision.Input("clip_vision", optional=True,
                                        tooltip="Optional: ComfyUI's SVD CLIP vision model (e.g. Image Only "
                                                "Checkpoint Loader), fed with SVD's own preprocessing (antialiased "
                                                "resize, normalisation); empty: the image encoder from svd_folder."),
                    _weight_dtype_input()],
            outputs=[MimicMotionModel.Output(display_name="mimicmotion_model",
                                             tooltip="For DisPose ControlNet Loader and MimicMotion Sampler."),
                     io.Model.Output(display_name="model",
                                     tooltip="MimicMotion (UNet + PoseNet) as a ComfyUI MODEL (SVD's v-prediction "
                                             "EDM sampling and latent format): for core KSampler / "
                                             "SamplerCustomAdvanced with MimicMotion Conditioning.")])

    @classmethod
    def validate_inputs(cls, svd_folder: str, mimicmotion_checkpoint: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, svd_folder: str, mimicmotion_checkpoint: str, precision: str, vae=None, clip_vision=None,
                weight_dtype: str = "default") -> io.NodeOutput:
        svd = folder_or_single_file_path("svd", svd_folder, "SVD xt single file")
        weights = model_path("mimicmotion", mimicmotion_checkpoint)
        from ..dispose_core.loading.mimicmotion import load_mimicmotion_parts
        from ..dispose_core.models.cast_layers import store_weights_fp8

        dtype, fp8 = bridge.pick_dtype(precision), bridge.fp8_weights(weight_dtype)
        parts = load_mimicmotion_parts(svd, weights, dtype, ops=bridge.model_ops(dtype, fp8))
        if getattr(parts.svd, "report", None) is not None:
            log.info("MimicMotion Loader: %s", parts.svd.report)
        if fp8:
            store_weights_fp8(parts.denoiser.unet, scaled=False)
        enc = parts.image_encoder
        model = native.mimicmotion_model(parts.denoiser)
        units = MimicMotionUnits(
            image_encoder=bridge.manage(enc) if clip_vision is None else bridge.manage_core(
                ImageEncoder(bridge.CoreImageEncoder(clip_vision), enc.size, enc.mean, enc.std), clip_vision),
            vae=bridge.manage(parts.vae) if vae is None else bridge.manage_core(
                bridge.CoreVAE(vae, parts.vae.config.scaling_factor), vae),
            denoiser=bridge.Managed(parts.denoiser, model.model, model, castable=True),
            mimicmotion_path=parts.mimicmotion_path, fp8=fp8)
        return io.NodeOutput(units, model)


class DisPoseControlNetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseControlNetLoader", "DisPose ControlNet Loader",
            "Builds DisPose's hybrid ControlNet from the MimicMotion UNet and loads DisPose.pth "
            "over it (motion encoder, point adapters, ControlNet trunk).",
            inputs=[MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader: the ControlNet "
                                                                        "starts as a copy of its UNet encoder, and "
                                                                        "stores its weights as the loader's "
                                                                        "weight_dtype says."),
                    model_input("dispose_checkpoint", "dispose", "DisPose ControlNet weights."),
                    precision_input()],
            outputs=[DisPoseControlNet.Output(display_name="dispose_controlnet",
                                              tooltip="For Hybrid ControlNet Apply.")])

    @classmethod
    def validate_inputs(cls, dispose_checkpoint: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, mimicmotion_model: MimicMotionUnits, dispose_checkpoint: str, precision: str) -> io.NodeOutput:
        path = model_path("dispose", dispose_checkpoint)
        from ..dispose_core.loading.checkpoint import read_checkpoint, strip_prefix
        from ..dispose_core.loading.dispose import load_dispose_controlnet
        from ..dispose_core.models.cast_layers import store_weights_fp8

        units = mimicmotion_model
        # fp8 UNet weights are not the loaded ones: the copied encoder comes from the file (memory-mapped)
        unet_state = (strip_prefix(read_checkpoint(units.mimicmotion_path, "MimicMotion checkpoint"), "unet.")
                      if units.fp8 else None)
        dtype = bridge.pick_dtype(precision)
        controlnet, report = load_dispose_controlnet(path, units.denoiser.value.unet, dtype, unet_state=unet_state,
                                                     ops=bridge.model_ops(dtype, units.fp8))
        log.info("DisPose ControlNet: %s", report)
        if units.fp8:
            store_weights_fp8(controlnet, scaled=False)
        return io.NodeOutput(bridge.manage(controlnet, castable=True))


class HybridControlNetApply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        c = _CONTROL
        return schema(
            "DisPoseHybridControlNetApply", "Hybrid ControlNet Apply",
            "Combines DisPose's motion field guidance (sparse + dense) and keypoint correspondence "
            "into the control the MimicMotion Sampler applies.",
            inputs=[
                DisPoseControlNet.Input("dispose_controlnet", tooltip="From DisPose ControlNet Loader."),
                Motion.Input("motion_field", tooltip="From Sparse Motion Field."),
                Flow.Input("dense_flow", tooltip="From CMP Dense Flow."),
                Points.Input("point_embeddings", tooltip="From DIFT Point Embed."),
                _strength("strength", c.strength, "Scale of all ControlNet residuals (0 = no DisPose)."),
                _strength("motion_strength", c.motion_strength,
                          "Scale of the motion field guidance; 0 = the paper's 'w/o motion'."),
                _strength("point_strength", c.point_strength,
                          "Scale of the keypoint correspondence; 0 = the paper's 'w/o point'."),
                _percent("start_percent", c.start_percent, "Fraction of the steps after which control starts."),
                _percent("end_percent", c.end_percent, "Fraction of the steps after which control stops."),
            ],
            outputs=[Control.Output(display_name="control", tooltip="For the MimicMotion Sampler's control input, or "
                                                                    "Apply DisPose Control (core samplers).")])

    @classmethod
    def execute(cls, dispose_controlnet: bridge.Managed, motion_field: MotionField, dense_flow: DenseFlow,
                point_embeddings: PointEmbeddings, strength: float, motion_strength: float,
                point_strength: float, start_percent: float, end_percent: float) -> io.NodeOutput:
        return io.NodeOutput(pipeline.hybrid_control(
            dispose_controlnet, motion_field, dense_flow, point_embeddings, strength=strength,
            motion_strength=motion_strength, point_strength=point_strength, start_percent=start_percent,
            end_percent=end_percent))


NOISE_DEVICES = ("official", "cpu")
NOISE_DRAWS = ("official", "ksampler")
OUT_OF_MEMORY_ADVICE = ("try, in this order: a smaller tile_size (memory grows with it), weight_dtype fp8_e4m3fn in "
                        "MimicMotion Loader, a lower resolution in DWPose Extract, a smaller decode_chunk_size; "
                        "or start ComfyUI with --lowvram / --reserve-vram")


@contextmanager
def _phase(name: str, models: list[bridge.Managed], memory_required: int = 0) -> Iterator[None]:
    """Load ``models`` for one sampler phase and offload them afterwards (also on failure), so no
    phase keeps another phase's weights; an out-of-memory error gets our advice (``stage`` then
    releases the cached memory)."""
    try:
        bridge.load_to_device(models, memory_required)
        yield
    except Exception as exc:
        if bridge.is_out_of_memory(exc):
            raise DeviceMemoryError(
                f"Out of memory in the MimicMotion Sampler's {name} phase: {OUT_OF_MEMORY_ADVICE}.") from exc
        raise
    finally:
        bridge.unload(models)


def seed_input(tooltip: str = "Seed of the initial noise.") -> io.Int.Input:
    return io.Int.Input("seed", default=_DEFAULTS.seed, min=0, max=SEED_MAX, tooltip=tooltip)


def conditioning_inputs() -> list[io.Input]:
    """noise_aug, fps, motion_bucket_id: SVD's conditioning settings (sampler and conditioning node)."""
    d = _DEFAULTS
    return [io.Float.Input("noise_aug", default=d.noise_aug, min=0.0, max=1.0, step=0.01,
                           tooltip="Noise added to the reference latent (0 = official)."),
            io.Int.Input("fps", default=d.fps, min=1, max=60,
                         tooltip="Frame-rate conditioning of SVD (the model sees fps - 1)."),
            io.Int.Input("motion_bucket_id", default=d.motion_bucket_id, min=0, max=1023,
                         tooltip="SVD motion conditioning; higher = more motion.")]


def tile_inputs() -> list[io.Input]:
    d = _DEFAULTS
    return [io.Int.Input("tile_size", default=d.tile_size, min=2, max=128,
                         tooltip="Frames per tile incl. the reference (memory grows with it)."),
            io.Int.Input("overlap", default=d.overlap, min=0, max=127,
                         tooltip="Frames shared by neighbouring tiles (blended).")]


def batch_quirk_input() -> io.Boolean.Input:
    return advanced(io.Boolean.Input(
        "official_batch_quirk", default=True, optional=True,
        tooltip="On (official): reproduce diffusers 0.27's mix-up of the CFG batch in the SVD temporal "
                "cross-attention, which the official code runs on and the trained weights saw. Off: "
                "the corrected attention (later diffusers)."))


def noise_device_input() -> io.Combo.Input:
    return advanced(io.Combo.Input(
        "noise_device", options=list(NOISE_DEVICES), default="official", optional=True,
        tooltip="official: the initial noise is drawn by a generator on the compute device, a CUDA "
                "generator on a GPU, as the official script does. cpu: always drawn on the CPU, so a "
                "seed gives the same video on every machine."))


def noise_draw_input() -> io.Combo.Input:
    return advanced(io.Combo.Input(
        "noise_draw", options=list(NOISE_DRAWS), default="official", optional=True,
        tooltip="official: the official run's initial noise (one tile of frames repeated over the video, drawn "
                "after the noise augmentation). ksampler: what core KSampler draws for the seed, to reproduce "
                "a KSampler run of MimicMotion's MODEL with this node."))


def noise_generator(noise_device: str, seed: int) -> torch.Generator:
    """The official run draws its noise with a generator on its compute device (a CUDA generator
    on a GPU, inference_ctrl.py); ``cpu`` draws on the CPU, the same video on every machine."""
    device = bridge.torch_device()
    on = device if noise_device == "official" and device.type == "cuda" else torch.device("cpu")
    return torch.Generator(device=on).manual_seed(int(seed))


def encode_phase(units: MimicMotionUnits, plan: SamplingPlan) -> EncodedReference:
    """The encode phase with only CLIP + VAE loaded."""
    height, width = plan.size
    with _phase("encode", [units.image_encoder, units.vae],
                vae_activation_bytes(1, height, width, compute_placement(units.vae.modules)[1], decode=False)):
        return encode_reference(plan, units.image_encoder.value, units.vae.value)


def decode_phase(units: MimicMotionUnits, latents: torch.Tensor, chunk_size: int, *,
                 keep_reference_frame: bool = False, ticker: Ticker | None = None) -> torch.Tensor:
    """The decode phase with only the VAE loaded: model-scaled latents -> (F-1,H,W,3) frames."""
    height, width = latents.shape[-2] * 8, latents.shape[-1] * 8
    with _phase("decode", [units.vae], vae_activation_bytes(
            chunk_size, height, width, compute_placement(units.vae.modules)[1], decode=True)):
        return decode_video(units.vae.value, latents, chunk_size, keep_reference_frame=keep_reference_frame,
                            ticker=ticker)


def sampling_model(units: MimicMotionUnits, plan: SamplingPlan, control: pipeline.ControlInputs | None,
                   official_batch_quirk: bool) -> Any:
    """The MODEL as the MimicMotion Sampler runs it: clones with the plan's tiles, the quirk, the
    control and the official guidance ramp (the loader's MODEL is not changed)."""
    model = native.with_batch_quirk(native.with_tiles(units.denoiser.patcher, plan.tile_size, plan.overlap),
                                    official_batch_quirk)
    if control is not None:
        model = native.with_control(model, control)
    if plan.cfg:
        model = native.with_linear_guidance(model, plan.settings.min_guidance)
    return model


class _ComfyPhases:
    """The MimicMotion Sampler's phases (``pipeline.Phases``): each loads only its models; the sample
    phase runs the native MODEL through ``comfy.samplers`` with the official Euler and shows previews."""

    def __init__(self, units: MimicMotionUnits, control: pipeline.ControlInputs | None, official_batch_quirk: bool,
                 progress: native.ProgressPreview, noise_draw: str = "official"):
        self.units, self.control, self.quirk, self.progress = units, control, official_batch_quirk, progress
        self.noise_draw = noise_draw
        self.model: Any = None

    def phases(self) -> pipeline.Phases:
        return pipeline.Phases(encode=lambda plan: encode_phase(self.units, plan), denoise=self.denoise,
                               decode=lambda latents, plan, ticker: decode_phase(
                                   self.units, latents, plan.settings.decode_chunk_size, ticker=ticker))

    def denoise(self, encoded: EncodedReference, ticker: Ticker) -> torch.Tensor:
        plan, s = encoded.plan, encoded.plan.settings
        height, width = plan.size
        model = self.model = sampling_model(self.units, plan, self.control, self.quirk)
        native.set_options(model, {TILE_HOOKS: TileHooks(ticker.check_stop, ticker.tick)})
        positive, negative = native.conditioning(encoded.embedding, encoded.latent, plan.poses, s.fps,
                                                 s.motion_bucket_id, s.noise_aug)
        sample_models = [dataclasses.replace(self.units.denoiser, patcher=model)]  # the clones ComfyUI samples
        if self.control is not None:
            sample_models.append(dataclasses.replace(self.control.controlnet, patcher=native.controlnet_patcher(model)))
        preview = native.previewer(model)
        with _phase("sample", sample_models, tile_activation_bytes(height, width, plan.tile_size,
                                                                   native.compute_dtype(model), cfg=plan.cfg)):
            latent = native.empty_latent(plan.num_frames, height, width)
            noise = encoded.noise() if self.noise_draw == "official" else native.ksampler_noise(latent, s.seed)
            samples = native.sample(
                model, noise, positive, negative, s.max_guidance if plan.cfg else 1.0,
                sampling_sigmas(plan, self.units.denoiser.value), latent, s.seed,
                callback=lambda step, x0, x, total: self.progress.show(preview(x0)))
        return native.model_latents(model, samples)


class MimicMotionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = _DEFAULTS
        return schema(
            "DisPoseMimicMotionSampler", "MimicMotion Sampler",
            "Animates the reference image along the poses with MimicMotion (optionally guided by "
            "DisPose), in overlapping tiles of frames; returns the driving frames only. Samples the "
            "loader's MODEL through ComfyUI's sampling with the official Euler (previews included).",
            inputs=[
                MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader."),
                reference_input(),
                poses_input(),
                seed_input(),
                io.Int.Input("steps", default=d.steps, min=1, max=200, tooltip="Denoising steps."),
                io.Float.Input("min_guidance", default=d.min_guidance, min=0.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance at the first frame of the video (as officially, "
                                       "the ramp runs over the whole video, not per tile)."),
                io.Float.Input("max_guidance", default=d.max_guidance, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance at the last frame of the video (linear from min_guidance over "
                                       "all frames)."),
                *conditioning_inputs(),
                *tile_inputs(),
                io.Int.Input("decode_chunk_size", default=d.decode_chunk_size, min=1, max=128,
                             tooltip="Frames decoded together by the VAE (memory vs speed)."),
                Control.Input("control", optional=True,
                              tooltip="From Hybrid ControlNet Apply; leave empty for plain MimicMotion."),
                batch_quirk_input(),
                noise_device_input(),
                noise_draw_input(),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="One generated frame per driving frame "
                                                                    "(the reference frame is dropped)."),
                     io.Latent.Output(display_name="latent",
                                      tooltip="The denoised video latent, reference frame included (raw VAE "
                                              "latents, as ComfyUI's LATENT): for core VAE Decode or "
                                              "MimicMotion Decode.")])

    @classmethod
    def execute(cls, mimicmotion_model: MimicMotionUnits, reference_image: torch.Tensor, poses: PoseSequence,
                control: pipeline.ControlInputs | None = None, official_batch_quirk: bool = True,
                noise_device: str = "official", noise_draw: str = "official", **settings) -> io.NodeOutput:
        settings = pipeline.SamplerSettings(**settings)
        with stage():
            plan = pipeline.animation_plan(reference_image, poses, control=control, settings=settings,
                                           generator=noise_generator(noise_device, settings.seed),
                                           official_batch_quirk=official_batch_quirk)
            progress = native.ProgressPreview()
            host = _ComfyPhases(mimicmotion_model, control, official_batch_quirk, progress, noise_draw)
            frames, latents = pipeline.run_phases(plan, host.phases(), progress=progress, should_stop=bridge.should_stop)
            samples = host.model.model.process_latent_out(latents).to(bridge.intermediate_device())
            return io.NodeOutput(frames.to(bridge.intermediate_device()), {"samples": samples})
