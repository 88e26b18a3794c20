"""MimicMotion sampling with optional DisPose control: reference + poses (+ control) -> frames.

Equal to the official ``Ctrl_Pipeline.__call__`` (DisPose) and, without a ControlNet, to
MimicMotion's pipeline with the CFG halves batched; the golden case M5 checks it end to end.
Differences that do not change the result: the CLIP embedding, reference latent and time ids are
computed once per video; PoseNet, the motion encoder and the point adapter run per tile call, once
for both CFG halves (nothing per frame of the video is kept); the scheduler's per-step noise draws,
which are multiplied by zero, are skipped; latents stay float32.
Deliberate differences (the official code crashes or misbehaves there) are listed in ``validate``;
the diffusers-0.27 CFG-batch quirk is reproduced exactly where the official DisPose pipeline has
it (see ``video_model.MimicMotionVideoModel``). The phases here are the CLI's entrance; ComfyUI's
runs the same video model and Euler through ``comfy.samplers`` (nodes/comfy_native.py).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..models.cast_layers import compute_placement
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
from .control import ControlInputs
from .decode import decoded_chunks, to_images
from .euler import sample_euler
from .guided import GuidedVideoModel, VideoConditions
from .schedule import SIGMA_MAX, SIGMA_MIN, init_noise_sigma, karras_sigmas
from .settings import SamplerSettings
from .tiling import tile_indices
from .pose_frames import PoseFrames, pose_frames
from .video_model import BATCH_QUIRK, CONTROL, TILE_HOOKS, TILES, ControlRun, MimicMotionVideoModel, TileHooks

__all__ = ["ControlInputs", "EncodedReference", "SamplerSettings", "SamplingInterrupted", "SamplingPlan", "Ticker",
           "decode_frames", "decoded_images", "denoise_latents", "encode_reference", "plan_sampling", "sample_latents",
           "sample_video", "split_models", "video_conditions"]

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


def validate(reference: torch.Tensor, poses: PoseFrames, control: ControlInputs | None, *, steps: int,
             tile_size: int, overlap: int, decode_chunk_size: int) -> int:
    """Check the inputs (reference (H,W,3), F pose frames); return the tile size to use.

    Decisions where the official pipeline crashes or silently misbehaves:
    * fewer frames than ``tile_size``: the tile is shrunk to the video (one tile);
    * ``overlap`` < 1 leaves frames that no tile covers (a tile of T frames adds T-1 driving
      frames but starts move by T - overlap), so 1 <= overlap < tile_size is required;
    * height and width must be multiples of 64.
    """
    num_frames, (height, width) = poses.num_frames, poses.size
    if reference.ndim != 3:
        raise InputError(f"reference must be one image (H, W, 3), got {tuple(reference.shape)}.")
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
    poses: PoseFrames  # PoseNet's input frames, drawn or indexed per tile
    control: ControlInputs | None
    settings: SamplerSettings
    tile_size: int  # the tile used (shrunk to the video when it is shorter)
    generator: torch.Generator | None
    official_batch_quirk: bool = True

    @property
    def num_frames(self) -> int:
        return self.poses.num_frames

    @property
    def size(self) -> tuple[int, int]:
        return self.poses.size

    @property
    def cfg(self) -> bool:
        return self.settings.cfg

    @property
    def overlap(self) -> int:
        return min(self.settings.overlap, self.tile_size - 1)

    @property
    def num_tiles(self) -> int:
        return int(tile_indices(self.num_frames, self.tile_size, self.overlap).shape[0])

    @property
    def tile_calls(self) -> int:
        """UNet (+ ControlNet) calls of the sample phase."""
        return self.settings.steps * self.num_tiles

    @property
    def decode_chunks(self) -> int:
        return -(-self.num_frames // self.settings.decode_chunk_size)

    def ticker(self, progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], Any] | None = None) -> Ticker:
        """One progress count over the sample and decode phases."""
        return Ticker(self.tile_calls + self.decode_chunks, progress, should_stop)

    def model_options(self, ticker: Ticker | None = None) -> dict:
        """The video model's transformer options for this run: tiles, the control (its features
        computed per tile call), the batch quirk, and the ticker between tile calls."""
        options = {TILES: (self.tile_size, self.overlap), BATCH_QUIRK: self.official_batch_quirk}
        if self.control is not None:
            options[CONTROL] = ControlRun(self.control)
        if ticker is not None:
            options[TILE_HOOKS] = TileHooks(ticker.check_stop, ticker.tick)
        return options


def plan_sampling(reference: Any, pose_images: Any, *, control: ControlInputs | None = None,
                  settings: SamplerSettings | None = None, generator: torch.Generator | None = None,
                  official_batch_quirk: bool = True, **fields: Any) -> SamplingPlan:
    """Check the inputs and settings (see ``validate`` and ``sample_video``) before any model is loaded.

    ``fields`` override single ``SamplerSettings`` fields (``seed=7``) of ``settings`` (default: official).
    """
    settings = dataclasses.replace(settings or SamplerSettings(), **fields)
    ref = _image_tensor(reference, "reference")
    poses = pose_frames(pose_images)
    tile = validate(ref, poses, control, steps=settings.steps, tile_size=settings.tile_size,
                    overlap=settings.overlap, decode_chunk_size=settings.decode_chunk_size)
    return SamplingPlan(ref, poses, control, settings, tile, generator, official_batch_quirk)


@dataclass
class EncodedReference:
    """Output of the encode phase: the step-invariant reference conditioning and the initial noise."""

    plan: SamplingPlan
    embedding: torch.Tensor  # (1,1,D) CLIP image embedding, in the image encoder's dtype and device
    latent: torch.Tensor  # (1,4,h,w) VAE posterior mode of the noise-augmented reference, the VAE's dtype
    init_noise: torch.Tensor  # (1,tile,4,h,w) float32, the generator's second draw

    def noise(self) -> torch.Tensor:
        """(F,4,h,w) unit initial noise: frame f takes draw f mod tile_size (official)."""
        return periodic_initial_latents(self.init_noise, self.plan.num_frames, torch.tensor(1.0))[0]


@torch.no_grad()
def encode_reference(plan: SamplingPlan, image_encoder: ImageEncoder, vae: torch.nn.Module) -> EncodedReference:
    """Encode phase: draw the noise (official order), CLIP-embed and VAE-encode the reference."""
    height, width = plan.size
    s = plan.settings
    gen = plan.generator if plan.generator is not None else torch.Generator().manual_seed(s.seed)
    draws = draw_noise(gen, height, width, plan.tile_size)
    ref_chw = _unit_range(plan.reference).permute(2, 0, 1)[None]
    enc = image_encoder.model
    emb = image_embedding(enc, clip_pixels(ref_chw, image_encoder.mean, image_encoder.std, image_encoder.size)
                          .to(*compute_placement(enc)))
    aug = ref_chw * 2.0 - 1.0 + s.noise_aug * draws.noise_aug.to(ref_chw.device)
    latent = reference_latent(vae, aug.to(*compute_placement(vae)))
    return EncodedReference(plan, emb, latent, draws.init)


@torch.no_grad()
def video_conditions(encoded: EncodedReference, denoiser: Denoiser) -> VideoConditions:
    """The sample phase's step-invariant inputs in the UNet's dtype and device (PoseNet runs per tile)."""
    plan = encoded.plan
    device, dtype = compute_placement(denoiser.unet)
    emb, latent = encoded.embedding.to(device, dtype), encoded.latent.to(device, dtype)
    s = plan.settings
    ids = added_time_ids(s.fps, s.motion_bucket_id, s.noise_aug).to(device, dtype)
    if not plan.cfg:
        return VideoConditions(emb, latent, ids, [plan.poses])
    return VideoConditions(torch.cat([torch.zeros_like(emb), emb]), torch.cat([torch.zeros_like(latent), latent]),
                           ids.expand(2, -1), [None, plan.poses])


def sampling_sigmas(plan: SamplingPlan, denoiser: Denoiser) -> torch.Tensor:
    """The official Karras sigmas of the run (the model's scheduler range)."""
    cfg = denoiser.scheduler_config or {}
    return karras_sigmas(plan.settings.steps, cfg.get("sigma_min", SIGMA_MIN), cfg.get("sigma_max", SIGMA_MAX))


@torch.no_grad()
def denoise_latents(encoded: EncodedReference, denoiser: Denoiser, ticker: Ticker | None = None) -> torch.Tensor:
    """Sample phase: UNet + PoseNet (+ the plan's ControlNet) -> (F,4,h,w) float32 denoised latents
    (unscaled, the official 'latent' output), on the UNet's device. The official Euler
    (``euler.sample_euler``) over the video model, as ComfyUI's entrance runs it."""
    plan = encoded.plan
    device = compute_placement(denoiser.unet)[0]
    sigmas = sampling_sigmas(plan, denoiser).to(device)
    options = plan.model_options(ticker if ticker is not None else Ticker(plan.tile_calls))
    options["sample_sigmas"] = sigmas
    guidance = frame_guidance(plan.settings.min_guidance, plan.settings.max_guidance, plan.num_frames)
    model = GuidedVideoModel(MimicMotionVideoModel(denoiser.unet, denoiser.pose_net),
                             video_conditions(encoded, denoiser), guidance.to(device) if plan.cfg else None,
                             options)
    noise = encoded.noise().to(device) * init_noise_sigma(sigmas[0]).to(device)
    return sample_euler(model, noise, sigmas)


def decoded_images(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int, *,
                   keep_reference_frame: bool = False, ticker: Ticker | None = None) -> Iterator[torch.Tensor]:
    """(F,4,h,w) model-scaled latents -> (n,H,W,3) float32 IMAGE chunks in [0,1] on the CPU, one per
    VAE call of ``chunk_size`` frames, decoded when asked for (the reference frame dropped from
    the first unless ``keep_reference_frame``): a caller stores or writes each chunk before the next."""
    chunks = decoded_chunks(vae, latents, chunk_size, on_chunk=None if ticker is None else ticker.tick,
                            should_stop=None if ticker is None else ticker.check_stop)
    for start, raw in zip(range(0, latents.shape[0], chunk_size), chunks):
        images = to_images(raw)
        del raw
        yield images if keep_reference_frame or start > 0 else images[1:]


def decode_video(vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int, *, keep_reference_frame: bool = False,
                 ticker: Ticker | None = None) -> torch.Tensor:
    """(F,4,h,w) model-scaled latents -> (F-1,H,W,3) float32 frames in [0,1] on the CPU (F with
    ``keep_reference_frame``), ``chunk_size`` frames per VAE call. Each chunk is copied into the
    preallocated batch as it is decoded: the video is held once, beside one chunk."""
    total = latents.shape[0] - (0 if keep_reference_frame else 1)
    frames, done = None, 0
    for images in decoded_images(vae, latents, chunk_size, keep_reference_frame=keep_reference_frame, ticker=ticker):
        if frames is None:
            frames = torch.empty((total, *images.shape[1:]), dtype=images.dtype)
        frames[done:done + images.shape[0]] = images
        done += images.shape[0]
    return frames  # the plan has at least one frame


def decode_frames(vae: torch.nn.Module, latents: torch.Tensor, plan: SamplingPlan, *,
                  keep_reference_frame: bool = False, ticker: Ticker | None = None) -> torch.Tensor:
    """Decode phase of ``plan``: ``decode_video`` with its ``decode_chunk_size``."""
    return decode_video(vae, latents, plan.settings.decode_chunk_size, keep_reference_frame=keep_reference_frame,
                        ticker=ticker)


def split_models(models: Any) -> tuple[ImageEncoder, torch.nn.Module, Denoiser]:
    """The phase units of ``MimicMotionParts`` or of an all-in-one models object (``load_mimicmotion``'s,
    or any object with unet, pose_net, vae, image_encoder and clip_size/clip_mean/clip_std)."""
    if isinstance(getattr(models, "denoiser", None), Denoiser):
        return models.image_encoder, models.vae, models.denoiser
    return (ImageEncoder(models.image_encoder, models.clip_size, models.clip_mean, models.clip_std), models.vae,
            Denoiser(models.unet, models.pose_net, getattr(models, "scheduler_config", None) or {}))


@torch.no_grad()
def sample_latents(models: Any, reference: Any, pose_images: Any, *, control: ControlInputs | None = None,
                   generator: torch.Generator | None = None, official_batch_quirk: bool = True,
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], Any] | None = None, **settings: Any) -> torch.Tensor:
    """Encode and denoise only: (F,4,H/8,W/8) float32 latents (unscaled, the official 'latent' output).

    Settings as in ``sample_video``.
    """
    plan = plan_sampling(reference, pose_images, control=control, generator=generator,
                         official_batch_quirk=official_batch_quirk, **settings)
    image_encoder, vae, denoiser = split_models(models)
    encoded = encode_reference(plan, image_encoder, vae)
    return denoise_latents(encoded, denoiser, Ticker(plan.tile_calls, progress, should_stop))


@torch.no_grad()
def sample_video(models: Any, reference: Any, pose_images: Any, *, control: ControlInputs | None = None,
                 keep_reference_frame: bool = False, generator: torch.Generator | None = None,
                 official_batch_quirk: bool = True, progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], Any] | None = None, **settings: Any) -> torch.Tensor:
    """Animate ``reference`` (H,W,3) with ``pose_images`` (F,H,W,3; frame 0 = reference pose).

    The three phases in a row (``encode_reference``, ``denoise_latents``, ``decode_frames``; a host
    that manages memory calls them itself with each phase's models loaded). ``settings``: fields of
    ``SamplerSettings`` (defaults official).
    Returns (F-1,H,W,3) float32 frames in [0,1] on the CPU (F with ``keep_reference_frame``; the
    official script drops frame 0, the reconstructed reference). Inputs are uint8, or float in
    [0,1]; they are cast to each model's dtype and device. ``seed`` seeds a CPU generator
    (device-independent; the official script seeds a generator on its device, so its GPU runs draw
    different noise: pass ``generator`` to choose). CFG runs when a frame's guidance exceeds 1 (the
    official code looks only at ``max_guidance``); otherwise the conditional prediction alone is
    used, as officially -- with DisPose keypoints too, where the official point adapter fails
    without the CFG batch. ``official_batch_quirk``: diffusers 0.27's CFG-batch mix-up where the
    ControlNet runs (``svd_trunk.set_official_batch_quirk``). ``progress(done, total)`` is called
    after each tile call and decoded chunk; ``should_stop()`` before each tile call (return True, or
    raise, to interrupt).
    """
    plan = plan_sampling(reference, pose_images, control=control, generator=generator,
                         official_batch_quirk=official_batch_quirk, **settings)
    image_encoder, vae, denoiser = split_models(models)
    ticker = plan.ticker(progress, should_stop)
    latents = denoise_latents(encode_reference(plan, image_encoder, vae), denoiser, ticker)
    return decode_frames(vae, latents, plan, keep_reference_frame=keep_reference_frame, ticker=ticker)
