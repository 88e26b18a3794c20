"""MimicMotion sampling with optional DisPose control: reference + poses (+ control) -> frames.

Equal to the official ``Ctrl_Pipeline.__call__`` (DisPose) and, without a ControlNet, to
MimicMotion's pipeline with the CFG halves batched; the golden case M5 checks it end to end.
Differences that do not change the result: every step-invariant tensor (CLIP embedding, reference
latent, time ids, pose latents, motion and keypoint features) is computed once per video; the
scheduler's per-step noise draws, which are multiplied by zero, are skipped; latents stay float32.
Deliberate differences (the official code crashes or misbehaves there) are listed in ``validate``;
the diffusers-0.27 CFG-batch quirk is reproduced exactly where the official DisPose pipeline has
it (see ``_TileModel``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..models.cast_layers import compute_placement
from ..models.svd_trunk import set_official_batch_quirk
from ..models.units import Denoiser, ImageEncoder
from ..types import check_frame_counts
from .conditioning import (
    added_time_ids,
    clip_pixels,
    draw_noise,
    frame_guidance,
    image_embedding,
    periodic_initial_latents,
    reference_latent,
)
from .control import ControlFeatures, ControlInputs, control_features
from .decode import decode_latents, to_images
from .loop import denoise
from .schedule import SIGMA_MAX, SIGMA_MIN, EulerSchedule, karras_schedule
from .tiling import tile_indices, tile_weights

__all__ = ["ControlInputs", "EncodedReference", "SamplingInterrupted", "SamplingPlan", "Ticker", "decode_frames",
           "denoise_latents", "encode_reference", "plan_sampling", "sample_latents", "sample_video", "split_models"]

SIZE_MULTIPLE = 64  # latent /8, three UNet downsamplers /8; the point adapter's /64 grid


class SamplingInterrupted(Exception):
    """Raised when ``should_stop()`` returns True (a host may also raise its own exception there)."""


def _nearest_multiples(size: int) -> str:
    low = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
    return f"{low} or {low + SIZE_MULTIPLE}" if low < size else f"{low}"


def _image_tensor(images: Any, what: str) -> torch.Tensor:
    """(…,H,W,3) uint8 or float (numpy or tensor) as a tensor, unconverted (uint8 stays small)."""
    t = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(t, torch.Tensor) or t.shape[-1] != 3:
        raise InputError(f"{what} must be an RGB image array (…, H, W, 3), got {getattr(images, 'shape', type(images))}.")
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise InputError(f"{what} must be uint8 or float in [0, 1], got {t.dtype}.")
    return t


def _unit_range(t: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 /255; float -> float32 (taken as [0,1])."""
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def _pose_pm1(t: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) poses -> (n,3,H,W) float32 in [-1,1] (uint8 as the official u8/127.5 - 1)."""
    x = t.float() / 127.5 - 1.0 if t.dtype == torch.uint8 else t.float() * 2.0 - 1.0
    return x.permute(0, 3, 1, 2)


def validate(reference: torch.Tensor, poses: torch.Tensor, control: ControlInputs | None, *, steps: int,
             tile_size: int, overlap: int, decode_chunk_size: int) -> int:
    """Check the inputs (reference (H,W,3), poses (F,H,W,3)); return the tile size to use.

    Decisions where the official pipeline crashes or silently misbehaves:
    * fewer frames than ``tile_size``: the tile is shrunk to the video (one tile);
    * ``overlap`` < 1 leaves frames that no tile covers (a tile of T frames adds T-1 driving
      frames but starts move by T - overlap), so 1 <= overlap < tile_size is required;
    * height and width must be multiples of 64.
    """
    num_frames, height, width = poses.shape[:3]
    if reference.ndim != 3:
        raise InputError(f"reference must be one image (H, W, 3), got {tuple(reference.shape)}.")
    if poses.ndim != 4:
        raise InputError(f"pose_images must be (F, H, W, 3), got {tuple(poses.shape)}.")
    if reference.shape[:2] != (height, width):
        raise InputError(
            f"The reference image is {reference.shape[1]}x{reference.shape[0]} but the pose images are "
            f"{width}x{height} (width x height). Render the poses on the reference's canvas.")
    bad = [f"{name} {size} (use {_nearest_multiples(size)})"
           for name, size in (("height", height), ("width", width)) if size % SIZE_MULTIPLE]
    if bad:
        raise InputError(f"The generation size must be a multiple of {SIZE_MULTIPLE} pixels: "
                         + ", ".join(bad) + ". Resize or crop the reference and the poses.")
    if num_frames < 2:
        raise InputError(f"Got {num_frames} pose frame(s); need the reference pose plus at least one "
                         "driving frame.")
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}.")
    if tile_size < 2:
        raise InputError(f"tile_size must be at least 2 (the reference frame plus one driving frame), got {tile_size}.")
    if not 1 <= overlap < tile_size:
        raise InputError(
            f"overlap must lie in 1..tile_size-1 = 1..{tile_size - 1}, got {overlap}. Each tile holds the "
            "reference plus tile_size-1 driving frames; with overlap 0 some frames would never be denoised.")
    if decode_chunk_size < 1:
        raise InputError(f"decode_chunk_size must be at least 1, got {decode_chunk_size}.")
    if control is not None:
        counts = {"poses": num_frames, "motion_field": control.motion_field.num_frames,
                  "dense_flow": control.dense_flow.num_frames}
        if control.points is not None:
            counts["points"] = control.points.num_frames
        check_frame_counts(**counts)
        for name, field in (("motion_field", control.motion_field), ("dense_flow", control.dense_flow)):
            if (field.height, field.width) != (height, width):
                raise InputError(f"{name} is (2, {field.height}, {field.width}) per frame but the poses need "
                                 f"(2, {height}, {width}). Compute it on the same canvas as the poses.")
        if not 0.0 <= control.start_percent <= control.end_percent <= 1.0:
            raise InputError(f"Need 0 <= start_percent <= end_percent <= 1, got {control.start_percent} "
                             f"and {control.end_percent}.")
    return min(tile_size, num_frames)


class _TileModel:
    """Predicts one tile's v for the CFG batch from the precomputed step-invariant tensors.

    The UNet's diffusers-0.27 CFG-batch context layout (``set_official_batch_quirk``) is switched
    per step: on where the ControlNet runs (the DisPose pipeline batches the CFG halves, so its
    results have it; unless the model's flag was turned off), off elsewhere (MimicMotion's own
    pipeline calls the UNet once per half, B=1, which never has it). So a plain run, or a step
    outside the control window, gives MimicMotion's result although the halves are batched here.
    The caller restores the model's flag (``_Run.denoise``).
    """

    def __init__(self, unet: torch.nn.Module, timesteps: torch.Tensor, context: torch.Tensor,
                 image_latent: torch.Tensor, time_ids: torch.Tensor, pose_latents: torch.Tensor,
                 control: ControlInputs | None, features: ControlFeatures | None, active: list[bool]):
        self.unet, self.timesteps = unet, timesteps
        self.context, self.image_latent, self.time_ids = context, image_latent, time_ids
        self.pose_latents, self.control, self.features, self.active = pose_latents, control, features, active
        self.batch = context.shape[0]
        self.dtype = compute_placement(unet)[1]
        self.official_quirk = getattr(unet, "official_batch_quirk", True)
        self._quirk: bool | None = None

    def _set_quirk(self, enabled: bool) -> None:
        if enabled != self._quirk:  # changes only at the control window edges
            set_official_batch_quirk(self.unet, enabled)
            self._quirk = enabled

    def __call__(self, step: int, number: int, idx: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
        frames = idx.shape[0]
        x = scaled.to(self.dtype).expand(self.batch, -1, -1, -1, -1)
        x = torch.cat([x, self.image_latent.expand(-1, frames, -1, -1, -1)], dim=2)
        pose = self.pose_latents[idx]
        if self.batch == 2:
            pose = torch.cat([torch.zeros_like(pose), pose])
        t = self.timesteps[step]
        down = mid = None
        self._set_quirk(self.active[step] and self.official_quirk)
        if self.active[step]:
            c, f = self.control, self.features
            down, mid = c.controlnet(
                x, t, self.context, self.time_ids, f.motion[idx],
                None if f.points is None else [p[idx] for p in f.points],
                conditioning_scale=c.strength, motion_scale=c.motion_strength, point_scale=c.point_strength)
        return self.unet(x, t, self.context, self.time_ids, pose_latents=pose,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid)


@torch.no_grad()
def _pose_latents(pose_net: torch.nn.Module, poses: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """PoseNet over all (F,H,W,3) frames once, kept in ``dtype``; chunked, so only ``chunk``
    frames exist at full resolution in float at a time."""
    device, net_dtype = compute_placement(pose_net)
    return torch.cat([pose_net(_pose_pm1(poses[s:s + chunk]).to(device, net_dtype)).to(dtype)
                      for s in range(0, poses.shape[0], chunk)])


class Ticker:
    """Counts tile calls and decoded chunks for ``progress(done, total)``; asks ``should_stop``
    before each tile call. One ticker can span the sample and decode phases of a run."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], Any] | None = None):
        self.total, self.done, self.progress, self.should_stop = total, 0, progress, should_stop

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise SamplingInterrupted("Sampling was interrupted.")


@dataclass(frozen=True)
class SamplingPlan:
    """Validated inputs and settings of one run: what every phase reads (cheap, no model runs)."""

    reference: torch.Tensor  # (H,W,3) uint8 or float in [0,1]
    poses: torch.Tensor  # (F,H,W,3) uint8 or float in [0,1]
    control: ControlInputs | None
    seed: int
    steps: int
    min_guidance: float
    max_guidance: float
    noise_aug: float
    fps: int
    motion_bucket_id: int
    tile_size: int  # the tile used (shrunk to the video when it is shorter)
    overlap: int
    decode_chunk_size: int
    generator: torch.Generator | None

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.poses.shape[1]), int(self.poses.shape[2])

    @property
    def cfg(self) -> bool:
        return max(self.min_guidance, self.max_guidance) > 1.0

    @property
    def num_tiles(self) -> int:
        return int(tile_indices(self.num_frames, self.tile_size, min(self.overlap, self.tile_size - 1)).shape[0])

    @property
    def tile_calls(self) -> int:
        """UNet (+ ControlNet) calls of the sample phase."""
        return self.steps * self.num_tiles

    @property
    def decode_chunks(self) -> int:
        return -(-self.num_frames // self.decode_chunk_size)

    def ticker(self, progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], Any] | None = None) -> Ticker:
        """One progress count over the sample and decode phases."""
        return Ticker(self.tile_calls + self.decode_chunks, progress, should_stop)


def plan_sampling(
    reference: Any, pose_images: Any, *, control: ControlInputs | None = None, seed: int = 42, steps: int = 25,
    min_guidance: float = 2.0, max_guidance: float = 2.0, noise_aug: float = 0.0, fps: int = 7,
    motion_bucket_id: int = 127, tile_size: int = 16, overlap: int = 6, decode_chunk_size: int = 8,
    generator: torch.Generator | None = None,
) -> SamplingPlan:
    """Check the inputs and settings (see ``validate`` and ``sample_video``) before any model is loaded."""
    ref = _image_tensor(reference, "reference")
    poses = _image_tensor(pose_images, "pose_images")
    tile = validate(ref, poses, control, steps=steps, tile_size=tile_size, overlap=overlap,
                    decode_chunk_size=decode_chunk_size)
    return SamplingPlan(ref, poses, control, int(seed), steps, min_guidance, max_guidance, noise_aug, fps,
                        motion_bucket_id, tile, overlap, decode_chunk_size, generator)


@dataclass
class EncodedReference:
    """Output of the encode phase: the step-invariant reference conditioning and the initial noise."""

    plan: SamplingPlan
    embedding: torch.Tensor  # (1,1,D) CLIP image embedding, in the image encoder's dtype and device
    latent: torch.Tensor  # (1,4,h,w) VAE posterior mode of the noise-augmented reference, the VAE's dtype
    init_noise: torch.Tensor  # (1,tile,4,h,w) float32, the generator's second draw


@torch.no_grad()
def encode_reference(plan: SamplingPlan, image_encoder: ImageEncoder, vae: torch.nn.Module) -> EncodedReference:
    """Encode phase: draw the noise (official order), CLIP-embed and VAE-encode the reference."""
    height, width = plan.size
    gen = plan.generator if plan.generator is not None else torch.Generator().manual_seed(plan.seed)
    draws = draw_noise(gen, height, width, plan.tile_size)
    ref_chw = _unit_range(plan.reference).permute(2, 0, 1)[None]
    enc = image_encoder.model
    emb = image_embedding(enc, clip_pixels(ref_chw, image_encoder.mean, image_encoder.std, image_encoder.size)
                          .to(*compute_placement(enc)))
    aug = ref_chw * 2.0 - 1.0 + plan.noise_aug * draws.noise_aug.to(ref_chw.device)
    latent = reference_latent(vae, aug.to(*compute_placement(vae)))
    return EncodedReference(plan, emb, latent, draws.init)


@dataclass
class _Run:
    """A fully prepared sample phase: the loop needs nothing else."""

    latents: torch.Tensor  # (1,F,4,h,w) float32 initial noise
    schedule: EulerSchedule
    tiles: torch.Tensor
    weights: torch.Tensor
    guidance: torch.Tensor | None
    predict: _TileModel

    @property
    def calls(self) -> int:
        return self.schedule.num_steps * self.tiles.shape[0]

    def denoise(self, ticker: Ticker) -> torch.Tensor:
        """(F,4,h,w) float32 denoised latents; the UNet's quirk setting is restored afterwards."""
        try:
            out = denoise(self.latents, self.schedule, self.tiles, self.weights, self.guidance, self.predict,
                          before_call=ticker.check_stop, after_call=ticker.tick)
        finally:
            set_official_batch_quirk(self.predict.unet, self.predict.official_quirk)
        return out[0]


@torch.no_grad()
def _prepare_denoise(encoded: EncodedReference, denoiser: Denoiser) -> _Run:
    """Everything the loop needs, in the UNet's dtype and device: the sample phase's set-up."""
    plan = encoded.plan
    num_frames, (height, width), tile, steps = plan.num_frames, plan.size, plan.tile_size, plan.steps
    unet, control = denoiser.unet, plan.control
    device, dtype = compute_placement(unet)
    emb, latent = encoded.embedding.to(device, dtype), encoded.latent.to(device, dtype)
    ids = added_time_ids(plan.fps, plan.motion_bucket_id, plan.noise_aug).to(device, dtype)
    if plan.cfg:
        emb, latent = torch.cat([torch.zeros_like(emb), emb]), torch.cat([torch.zeros_like(latent), latent])
        ids = ids.expand(2, -1)
    pose_latents = _pose_latents(denoiser.pose_net, plan.poses, tile, dtype).to(device)
    features = None if control is None else control_features(control, height, width, tile)

    sched_cfg = denoiser.scheduler_config or {}
    schedule = karras_schedule(steps, sched_cfg.get("sigma_min", SIGMA_MIN), sched_cfg.get("sigma_max", SIGMA_MAX))
    schedule = schedule.to(device)
    predict = _TileModel(unet, schedule.timesteps, emb, latent[:, None], ids, pose_latents, control, features,
                         control.active_steps(steps) if control is not None else [False] * steps)
    return _Run(
        latents=periodic_initial_latents(encoded.init_noise.to(device), num_frames, schedule.init_noise_sigma),
        schedule=schedule,
        tiles=tile_indices(num_frames, tile, min(plan.overlap, tile - 1)).to(device),
        weights=tile_weights(tile).to(device),
        guidance=frame_guidance(plan.min_guidance, plan.max_guidance, num_frames).to(device) if plan.cfg else None,
        predict=predict,
    )


@torch.no_grad()
def denoise_latents(encoded: EncodedReference, denoiser: Denoiser, ticker: Ticker | None = None) -> torch.Tensor:
    """Sample phase: UNet + PoseNet (+ the plan's ControlNet) -> (F,4,h,w) float32 denoised latents
    (unscaled, the official 'latent' output), on the UNet's device."""
    run = _prepare_denoise(encoded, denoiser)
    return run.denoise(ticker if ticker is not None else Ticker(run.calls))


@torch.no_grad()
def decode_frames(vae: torch.nn.Module, latents: torch.Tensor, plan: SamplingPlan, *,
                  keep_reference_frame: bool = False, ticker: Ticker | None = None) -> torch.Tensor:
    """Decode phase: (F,4,h,w) latents -> (F-1,H,W,3) float32 frames in [0,1] on the CPU
    (F with ``keep_reference_frame``), ``plan.decode_chunk_size`` frames per VAE call."""
    frames = to_images(decode_latents(vae, latents, plan.decode_chunk_size,
                                      on_chunk=None if ticker is None else ticker.tick,
                                      should_stop=None if ticker is None else ticker.check_stop))
    return frames if keep_reference_frame else frames[1:]


def split_models(models: Any) -> tuple[ImageEncoder, torch.nn.Module, Denoiser]:
    """The phase units of ``MimicMotionParts`` or of an all-in-one models object (``load_mimicmotion``'s,
    or any object with unet, pose_net, vae, image_encoder and clip_size/clip_mean/clip_std)."""
    if isinstance(getattr(models, "denoiser", None), Denoiser):
        return models.image_encoder, models.vae, models.denoiser
    return (ImageEncoder(models.image_encoder, models.clip_size, models.clip_mean, models.clip_std), models.vae,
            Denoiser(models.unet, models.pose_net, getattr(models, "scheduler_config", None) or {}))


@torch.no_grad()
def sample_latents(
    models: Any, reference: Any, pose_images: Any, *, control: ControlInputs | None = None, seed: int = 42,
    steps: int = 25, min_guidance: float = 2.0, max_guidance: float = 2.0, noise_aug: float = 0.0,
    fps: int = 7, motion_bucket_id: int = 127, tile_size: int = 16, overlap: int = 6,
    generator: torch.Generator | None = None, progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], Any] | None = None,
) -> torch.Tensor:
    """Encode and denoise only: (F,4,H/8,W/8) float32 latents (unscaled, the official 'latent' output).

    Settings as in ``sample_video``.
    """
    plan = plan_sampling(reference, pose_images, control=control, seed=seed, steps=steps, min_guidance=min_guidance,
                         max_guidance=max_guidance, noise_aug=noise_aug, fps=fps, motion_bucket_id=motion_bucket_id,
                         tile_size=tile_size, overlap=overlap, decode_chunk_size=1, generator=generator)
    image_encoder, vae, denoiser = split_models(models)
    encoded = encode_reference(plan, image_encoder, vae)
    return denoise_latents(encoded, denoiser, Ticker(plan.tile_calls, progress, should_stop))


@torch.no_grad()
def sample_video(
    models: Any,
    reference: Any,
    pose_images: Any,
    *,
    control: ControlInputs | None = None,
    seed: int = 42,
    steps: int = 25,
    min_guidance: float = 2.0,
    max_guidance: float = 2.0,
    noise_aug: float = 0.0,
    fps: int = 7,
    motion_bucket_id: int = 127,
    tile_size: int = 16,
    overlap: int = 6,
    decode_chunk_size: int = 8,
    keep_reference_frame: bool = False,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], Any] | None = None,
) -> torch.Tensor:
    """Animate ``reference`` (H,W,3) with ``pose_images`` (F,H,W,3; frame 0 = reference pose).

    The three phases in a row (``encode_reference``, ``denoise_latents``, ``decode_frames``; a host
    that manages memory calls them itself with each phase's models loaded).
    Returns (F-1,H,W,3) float32 frames in [0,1] on the CPU (F with ``keep_reference_frame``; the
    official script drops frame 0, the reconstructed reference). Inputs are uint8, or float in
    [0,1]; they are cast to each model's dtype and device. ``seed`` seeds a CPU generator
    (device-independent; the official script seeds a generator on its device, so its GPU runs draw
    different noise: pass ``generator`` to choose). CFG runs when a frame's guidance exceeds 1 (the
    official code looks only at ``max_guidance``); otherwise the conditional prediction alone is
    used, as officially -- with DisPose keypoints too, where the official point adapter fails
    without the CFG batch. ``progress(done, total)`` is called after each tile call and decoded
    chunk; ``should_stop()`` before each tile call (return True, or raise, to interrupt).
    """
    plan = plan_sampling(reference, pose_images, control=control, seed=seed, steps=steps, min_guidance=min_guidance,
                         max_guidance=max_guidance, noise_aug=noise_aug, fps=fps, motion_bucket_id=motion_bucket_id,
                         tile_size=tile_size, overlap=overlap, decode_chunk_size=decode_chunk_size,
                         generator=generator)
    image_encoder, vae, denoiser = split_models(models)
    ticker = plan.ticker(progress, should_stop)
    latents = denoise_latents(encode_reference(plan, image_encoder, vae), denoiser, ticker)
    return decode_frames(vae, latents, plan, keep_reference_frame=keep_reference_frame, ticker=ticker)
