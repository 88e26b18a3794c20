"""MimicMotion as a native ComfyUI MODEL: the bridge to ``comfy.model_base``, ``comfy.samplers`` and
``latent_preview`` (with ``comfy_bridge``, the only module reaching into comfy internals).

The MODEL is a ``BaseModel`` with SVD's sampling (v-prediction EDM, sigma 0.002..700, sigma_data 1)
and latent format (SD 1.5 scaling), whose diffusion model is the pack's ``MimicMotionVideoModel``
(UNet + PoseNet, tiles fused inside). So core samplers, schedulers, CFG nodes and previews take it,
and the MimicMotion Sampler node samples it through the same ``comfy.samplers`` path.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import comfy.conds
import comfy.context_windows
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.supported_models_base
import latent_preview
import torch

from ..dispose_core.errors import InputError
from ..dispose_core.models.cast_layers import compute_placement
from ..dispose_core.models.units import Denoiser
from ..dispose_core.sampling.conditioning import added_time_ids, frame_guidance
from ..dispose_core.sampling.control import ControlInputs
from ..dispose_core.sampling.euler import sample_euler
from ..dispose_core.sampling.memory import tile_activation_bytes
from ..dispose_core.sampling.pose_frames import FrameSubset, PoseFrames
from ..dispose_core.sampling.schedule import SIGMA_MAX, SIGMA_MIN
from ..dispose_core.sampling.video_model import (BATCH_QUIRK, CONTROL, DEFAULT_TILES, TILE_HOOKS, TILES, ControlRun,
                                                 MimicMotionVideoModel, TileHooks)
from . import comfy_bridge as bridge

POSES = "mimicmotion_poses"  # conditioning key: the positive's PoseFrames (drawn per tile from the keypoints)
CONTROL_SPEC = "dispose_control_spec"  # transformer option: the ControlInputs a MODEL carries
CONTROLNET_KEY = "dispose_controlnet"  # additional model key: loaded with the MODEL while sampling


class Shared:
    """A model-option value kept by reference when a MODEL is cloned: ComfyUI 0.3.64's clone deep-copies
    the model options, which would copy the ControlNet's weights with every clone."""

    def __init__(self, value: Any):
        self.value = value

    def __deepcopy__(self, memo: dict) -> Shared:
        return self


class MimicMotionConfig(comfy.supported_models_base.BASE):
    """SVD's sampling and latent format; the UNet is not built by ComfyUI (ours is assigned)."""

    unet_config: dict = {}
    latent_format = comfy.latent_formats.SD15
    sampling_settings = {"sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX, "sigma_data": 1.0}


class CONDPoseFrames(comfy.conds.CONDConstant):
    """A conditioning's pose frames (``PoseFrames``, or None for the unconditional half), handed to
    the video model as they are: it runs PoseNet per tile. Conditionings with and without poses
    batch together (one tuple entry per conditioning, in the batch's order), as the CFG halves must."""

    def can_concat(self, other: Any) -> bool:
        return isinstance(other, CONDPoseFrames)

    def concat(self, others: list) -> tuple:
        return (self.cond, *(other.cond for other in others))


class MimicMotionBaseModel(comfy.model_base.BaseModel):
    """SVD img2vid's conditioning (reference latent concatenated, image embedding, fps / motion bucket /
    augmentation) plus MimicMotion's pose frames, which the video model turns into pose latents per tile."""

    def __init__(self, video_model: MimicMotionVideoModel, device: torch.device | None = None):
        config = MimicMotionConfig({"disable_unet_model_creation": True})
        super().__init__(config, comfy.model_base.ModelType.V_PREDICTION_EDM, device=device)
        self.diffusion_model = video_model

    def extra_conds(self, **kwargs: Any) -> dict:
        noise = kwargs["noise"]
        frames, height, width = noise.shape[0], noise.shape[-2], noise.shape[-1]
        out = {}
        latent = kwargs.get("concat_latent_image")
        latent = torch.zeros_like(noise) if latent is None else latent
        if latent.shape[-2:] != noise.shape[-2:]:
            raise InputError(f"The reference latent is {latent.shape[-1] * 8}x{latent.shape[-2] * 8} but the video "
                             f"latent {width * 8}x{height * 8} pixels. Use the LATENT of MimicMotion Conditioning.")
        out["c_concat"] = comfy.conds.CONDNoiseShape(latent[:1].expand(frames, -1, -1, -1))
        if kwargs.get("cross_attn") is not None:
            out["c_crossattn"] = comfy.conds.CONDCrossAttn(kwargs["cross_attn"])
        ids = added_time_ids(kwargs.get("fps", 7), kwargs.get("motion_bucket_id", 127),
                             kwargs.get("augmentation_level", 0.0))
        out["time_ids"] = comfy.conds.CONDRegular(ids)
        out["pose_frames"] = CONDPoseFrames(kwargs.get(POSES))
        out["num_video_frames"] = comfy.conds.CONDConstant(frames)
        return out

    def resize_cond_for_context_window(self, cond_key: str, cond_value: Any, window: Any, x_in: torch.Tensor,
                                       device: Any, retain_index_list: Any = ()) -> Any:
        """Context windows (ComfyUI 0.33.0): the pose frames of the window's frames, picked the way the
        window picks the latent's (its own indexing of the frame numbers), so PoseNet sees the same frames."""
        if cond_key == "pose_frames" and isinstance(cond_value, CONDPoseFrames) and cond_value.cond is not None:
            frames = window.get_tensor(torch.arange(x_in.shape[window.dim]))
            return CONDPoseFrames(FrameSubset(cond_value.cond, tuple(int(f) for f in frames)))
        return super().resize_cond_for_context_window(cond_key, cond_value, window, x_in, device, retain_index_list)

    def memory_required(self, input_shape: Any, cond_shapes: Any = None) -> int:
        """One tile call's activations (the batch is frames; the tile bounds what runs at once)."""
        frames = min(int(input_shape[0]), DEFAULT_TILES[0])
        height, width = int(input_shape[-2]) * 8, int(input_shape[-1]) * 8
        return tile_activation_bytes(height, width, frames, self.get_dtype(), cfg=True)


class WrappedVideoModel(MimicMotionVideoModel):
    """The video model with the MODEL's ``DIFFUSION_MODEL`` wrappers around each call (EasyCache's, for
    one), run by the diffusion model itself as ComfyUI's own diffusion models do: ``BaseModel`` does not."""

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                control: object = None, transformer_options: dict | None = None, **kwargs: Any) -> torch.Tensor:
        options = transformer_options if transformer_options is not None else {}
        wrappers = comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, options)
        return comfy.patcher_extension.WrapperExecutor.new_class_executor(super().forward, self, wrappers).execute(
            x, timesteps, context, control, options, **kwargs)


def _refuse_broken_core_nodes(executor: Any, *args: Any, **kwargs: Any) -> Any:
    """OUTER_SAMPLE wrapper: core nodes whose version in this ComfyUI cannot sample a model whose batch is
    the video's frames, refused before sampling with what to do instead (else a shape error deep in it).

    * ComfyUI 0.3.64's EasyCache (no ``output_channels``) caches input minus output, keeping the input's
      last channels where they differ: for SVD-style input (noisy latent ++ reference latent) that is
      the reference, and its skipped steps return the wrong channels.
    * ComfyUI 0.3.64's context windows (no ``total_frames``) match one sigma per batch row against the
      schedule and leave the per-frame conditioning (the poses) unsliced.
    """
    options = executor.class_obj.model_options
    cache = options.get("transformer_options", {}).get("easycache")
    if type(cache).__name__ == "EasyCacheHolder" and not hasattr(cache, "output_channels"):
        raise InputError("This ComfyUI's EasyCache does not support models that concatenate a reference latent "
                         "(SVD, MimicMotion). Use LazyCache instead, or update ComfyUI (0.33.0 works).")
    if options.get("context_handler") is not None and not _windows_slice_frames():
        raise InputError("This ComfyUI's context windows cannot split a video whose frames are the batch (SVD, "
                         "MimicMotion). Use MimicMotion Tiles for long videos (it bounds memory the official "
                         "way), or update ComfyUI (0.33.0 works).")
    return executor(*args, **kwargs)


def _windows_slice_frames() -> bool:
    return "total_frames" in inspect.signature(comfy.context_windows.IndexListContextWindow).parameters


def _place_after_load(patcher: comfy.model_patcher.ModelPatcher, *_: Any) -> None:
    bridge.place_castable(patcher.model, patcher.load_device)


def mimicmotion_model(denoiser: Denoiser) -> comfy.model_patcher.ModelPatcher:
    """The MODEL around MimicMotion's UNet + PoseNet (the one place it is built)."""
    video_model = WrappedVideoModel(denoiser.unet, denoiser.pose_net)
    base = MimicMotionBaseModel(video_model)
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                               offload_device=mm.unet_offload_device())
    patcher.add_callback(comfy.patcher_extension.CallbacksMP.ON_LOAD, _place_after_load)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "mimicmotion_host_checks",
                                 _refuse_broken_core_nodes)
    set_options(patcher, {TILE_HOOKS: TileHooks(before=bridge.should_stop)})
    return patcher


def set_options(patcher: comfy.model_patcher.ModelPatcher, options: dict) -> None:
    """Set transformer options on ``patcher`` (a clone of the received MODEL, never the MODEL itself)."""
    patcher.model_options.setdefault("transformer_options", {}).update(options)


def is_mimicmotion(model: Any) -> bool:
    return isinstance(getattr(model, "model", None), MimicMotionBaseModel)


def require_mimicmotion(model: Any, node: str) -> None:
    if not is_mimicmotion(model):
        raise InputError(f"{node} needs the MODEL of MimicMotion Loader, got {type(getattr(model, 'model', model)).__name__}.")


def with_tiles(model: comfy.model_patcher.ModelPatcher, tile_size: int, overlap: int) -> comfy.model_patcher.ModelPatcher:
    """A clone whose diffusion model fuses tiles of ``tile_size`` frames overlapping by ``overlap``."""
    if tile_size < 2 or not 1 <= overlap < tile_size:
        raise InputError(f"Need tile_size >= 2 and 1 <= overlap < tile_size, got {tile_size} and {overlap}.")
    clone = model.clone()
    set_options(clone, {TILES: (tile_size, overlap)})
    return clone


def with_batch_quirk(model: comfy.model_patcher.ModelPatcher, enabled: bool) -> comfy.model_patcher.ModelPatcher:
    clone = model.clone()
    set_options(clone, {BATCH_QUIRK: enabled})
    return clone


def _control_run_per_sample(executor: Any, *args: Any, **kwargs: Any) -> Any:
    """OUTER_SAMPLE wrapper: the ``ControlRun`` of the MODEL's control for one sampling run, set in the
    run's model options only (the MODEL carries the spec in a ``Shared``, never a per-run object)."""
    options = executor.class_obj.model_options.setdefault("transformer_options", {})
    spec: ControlInputs = options[CONTROL_SPEC].value
    options[CONTROL] = ControlRun(spec)
    try:
        return executor(*args, **kwargs)
    finally:
        options.pop(CONTROL, None)


def with_control(model: comfy.model_patcher.ModelPatcher, control: ControlInputs) -> comfy.model_patcher.ModelPatcher:
    """A clone that runs the DisPose ControlNet of ``control`` (whose ``controlnet`` is a
    ``bridge.Managed``) inside every tile call, loaded with the MODEL while sampling."""
    managed = control.controlnet
    clone = model.clone()
    clone.set_additional_models(CONTROLNET_KEY, [managed.patcher])
    set_options(clone, {CONTROL_SPEC: Shared(dataclasses.replace(control, controlnet=managed.value))})
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, CONTROLNET_KEY,
                               _control_run_per_sample)
    return clone


def controlnet_patcher(model: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """The DisPose ControlNet's patcher that sampling ``model`` loads (clones carry their own)."""
    return model.get_additional_models_with_key(CONTROLNET_KEY)[0]


def with_linear_guidance(model: comfy.model_patcher.ModelPatcher, min_guidance: float) -> comfy.model_patcher.ModelPatcher:
    """A clone with the official per-frame guidance ramp from ``min_guidance`` to the sampler's cfg over
    all frames (what core VideoLinearCFGGuidance computes; the CLI's ramp function, so both entrances
    share it)."""
    def ramp(args: dict) -> torch.Tensor:
        cond, uncond = args["cond"], args["uncond"]
        scale = frame_guidance(min_guidance, args["cond_scale"], cond.shape[0]).to(cond.device).view(-1, 1, 1, 1)
        return uncond + scale * (cond - uncond)

    clone = model.clone()
    clone.set_model_sampler_cfg_function(ramp, disable_cfg1_optimization=True)  # a max of 1 still ramps
    return clone


def conditioning(embedding: torch.Tensor, latent: torch.Tensor, poses: PoseFrames, fps: int,
                 motion_bucket_id: int, noise_aug: float) -> tuple[list, list]:
    """positive / negative CONDITIONING in SVD's keys plus the poses (positive only); the negative has
    the zero embedding and reference latent of the official unconditional half."""
    values = {"fps": fps, "motion_bucket_id": motion_bucket_id, "augmentation_level": noise_aug}
    embedding = embedding.float().cpu()
    latent = latent.float().cpu()
    positive = [[embedding, dict(values, concat_latent_image=latent, **{POSES: poses})]]
    negative = [[torch.zeros_like(embedding), dict(values, concat_latent_image=torch.zeros_like(latent))]]
    return positive, negative


def empty_latent(frames: int, height: int, width: int) -> dict:
    """The video LATENT to sample: frames are the batch (ComfyUI's SVD layout)."""
    return {"samples": torch.zeros((frames, 4, height // 8, width // 8), device=bridge.intermediate_device())}


def ksampler_noise(latent: dict, seed: int) -> torch.Tensor:
    """The initial noise core KSampler draws for ``seed`` (``comfy.sample.prepare_noise``)."""
    return comfy.sample.prepare_noise(latent["samples"], seed)


OFFICIAL_EULER = comfy.samplers.KSAMPLER(sample_euler)


def sample(model: comfy.model_patcher.ModelPatcher, noise: torch.Tensor, positive: list, negative: list, cfg: float,
           sigmas: torch.Tensor, latent: dict, seed: int,
           callback: Callable[[int, torch.Tensor, torch.Tensor, int], None] | None = None) -> torch.Tensor:
    """``comfy.sample.sample_custom`` with the official Euler: -> the LATENT's samples (raw VAE latents)."""
    return comfy.sample.sample_custom(model, noise, cfg, OFFICIAL_EULER, sigmas, positive, negative,
                                      latent["samples"], callback=callback, disable_pbar=True, seed=seed)


class ProgressPreview:
    """``progress(done, total)`` for the running node's progress bar, which also carries the latest
    preview image (``show``), as core's sampler callback does per step."""

    def __init__(self) -> None:
        self.update = bridge.progress_bar()
        self.done, self.total = 0, 1

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self.update(done, total)

    def show(self, preview: Any) -> None:
        if preview is not None:
            self.update(self.done, self.total, preview)


def previewer(model: comfy.model_patcher.ModelPatcher) -> Callable[[torch.Tensor], Any]:
    """x0 -> a progress-bar preview (``--preview-method``: latent2rgb, or TAESD where installed), or None."""
    method = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    if method is None:
        return lambda x0: None
    return lambda x0: method.decode_latent_to_preview_image("JPEG", x0)


def model_latents(model: comfy.model_patcher.ModelPatcher, samples: torch.Tensor) -> torch.Tensor:
    """LATENT samples (raw VAE latents) -> the model's latents (SD 1.5 scaling), which the pack's decode takes."""
    return model.model.process_latent_in(samples)


def compute_dtype(model: comfy.model_patcher.ModelPatcher) -> torch.dtype:
    return compute_placement(model.model.diffusion_model.unet)[1]
