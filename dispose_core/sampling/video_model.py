"""MimicMotion's UNet + PoseNet as one diffusion model over a batch of frames, the tiles fused inside.

The layout is ComfyUI's for SVD: the batch is (CFG halves x frames), the conditioning tensors come
one row per frame, and ``transformer_options`` says which half is which (``cond_or_uncond``: 0 cond,
1 uncond). Both entrances call this module: ComfyUI's ``BaseModel`` (nodes/comfy_native.py) and the
CLI's ``guided.GuidedVideoModel``. So every sampler gets the official tiles (the reference frame 0
in each, triangular weights), and memory grows with the tile, not the video.

Options read from ``transformer_options`` (set on a MODEL by the nodes, never on the module):
``TILES`` (tile_size, overlap), ``CONTROL`` (a ``ControlRun``), ``BATCH_QUIRK`` (bool, default on),
``TILE_HOOKS`` (``TileHooks``: interrupt checks and progress between tile calls).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..models.cast_layers import compute_placement
from ..models.svd_trunk import set_official_batch_quirk
from .control import ControlFeatures, ControlInputs, tile_control_features
from .pose_frames import PoseFrames, prefetched_tiles
from .tiling import tile_indices, tile_weights

log = logging.getLogger(__name__)

TILES = "mimicmotion_tiles"
CONTROL = "dispose_control"
BATCH_QUIRK = "mimicmotion_batch_quirk"
TILE_HOOKS = "mimicmotion_tile_hooks"
DEFAULT_TILES = (16, 6)  # official tile_size, overlap
UNCOND = 1  # ComfyUI's cond_or_uncond value of the unconditional half


@dataclass(frozen=True)
class TileHooks:
    """Called around every tile call: ``before`` may raise to interrupt, ``after`` counts progress."""

    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None


def step_of(sigma: float, sample_sigmas: torch.Tensor | None) -> tuple[int, int] | None:
    """(step index, number of steps) of ``sigma`` in the run's schedule: the last step whose sigma is
    >= ``sigma`` (samplers that evaluate between two sigmas count as the earlier step); None without
    a schedule."""
    if sample_sigmas is None:
        return None
    levels = sample_sigmas[:-1].float().cpu()
    steps = int(levels.shape[0])
    index = int((levels >= sigma * (1 - 1e-5)).sum()) - 1
    return min(max(index, 0), steps - 1), steps


class ControlRun:
    """The DisPose control during one sampling run: which steps it is active at, and its motion and
    keypoint features for the frames of one tile (computed per tile call, as officially)."""

    def __init__(self, control: ControlInputs):
        self.control = control

    def features(self, frames: torch.Tensor, height: int, width: int) -> ControlFeatures:
        return tile_control_features(self.control, frames, height, width)

    def active(self, sigma: float, sample_sigmas: torch.Tensor | None) -> bool:
        """Whether the ControlNet runs at ``sigma``: the step's fraction in [start, end) (``ControlInputs``)."""
        found = step_of(sigma, sample_sigmas)
        if found is None:
            return True
        step, steps = found
        return self.control.active_steps(steps)[step]


@torch.no_grad()
def pose_pm1(poses: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) pose frames -> (n,3,H,W) float32 in [-1,1], PoseNet's input (uint8 as the official
    u8 / 127.5 - 1; float taken as [0,1])."""
    x = poses.float() / 127.5 - 1.0 if poses.dtype == torch.uint8 else poses.float() * 2.0 - 1.0
    return x.permute(0, 3, 1, 2)


@torch.no_grad()
def pose_latents(pose_net: nn.Module, frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """PoseNet over (n,H,W,3) pose frames (uint8, or float in [0,1]) -> (n,C0,h,w) in ``dtype`` on
    the PoseNet's device."""
    device, net_dtype = compute_placement(pose_net)
    return pose_net(pose_pm1(frames).to(device, net_dtype)).to(dtype)


def tile_pose_latents(pose_net: nn.Module, sources: Sequence[PoseFrames | None], tiles: torch.Tensor,
                      dtype: torch.dtype) -> Iterator[torch.Tensor | None]:
    """Per tile, in order: (halves*T, C0, h, w) pose latents, PoseNet on each half's pose frames of
    the tile, zeros for a half without poses (the unconditional one, as officially); None when no
    half has poses. The next tile's frames are drawn on a worker thread while the model runs the
    current tile."""
    posed = [s for s in dict.fromkeys(sources) if s is not None]  # distinct sources, in order
    for frames in prefetched_tiles(posed, tiles):
        if not posed:
            yield None
            continue
        latents = {id(source): pose_latents(pose_net, f, dtype) for source, f in zip(posed, frames)}
        zeros = torch.zeros_like(next(iter(latents.values())))
        yield torch.cat([zeros if s is None else latents[id(s)] for s in sources])


def ordered_pose_frames(pose_frames: Sequence[PoseFrames | None], order: list[int], frames: int, height: int,
                        width: int) -> list[PoseFrames | None]:
    """The halves' pose frames in the official order, each checked against the video latent."""
    given = list(pose_frames)
    if len(given) != len(order):
        raise ValueError(f"pose_frames has {len(given)} entries for {len(order)} CFG halves")
    for source in given:
        if source is not None and (source.num_frames, source.size) != (frames, (height, width)):
            raise InputError(
                f"The poses are {source.num_frames} frames of {source.size[1]}x{source.size[0]} but the video "
                f"latent {frames} frames of {width}x{height}. Use the LATENT and CONDITIONING of the same "
                "MimicMotion Conditioning node.")
    return [given[i] for i in order]


@torch.compiler.disable  # drawing and a worker thread: torch.compile traces only the networks
def next_tile(tiles: Iterator[torch.Tensor | None]) -> torch.Tensor | None:
    return next(tiles)


def fuse_tiles(tiles: torch.Tensor, weights: torch.Tensor, num_frames: int,
               predict: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Blend ``predict(tile_number, frame_indices)`` -> (N,T,C,h,w) over (N,F,C,h,w) frames with the
    triangular ``weights``, normalised by each frame's total weight; float32 whatever the model dtype."""
    counts = torch.zeros(num_frames, device=weights.device)
    for idx in tiles:
        counts[idx] += weights
    frame_weight = weights.view(1, -1, 1, 1, 1)
    fused = None
    for number, idx in enumerate(tiles):
        out = predict(number, idx).float()
        if fused is None:
            fused = torch.zeros((out.shape[0], num_frames, *out.shape[2:]), device=out.device)
        fused[:, idx] += out * frame_weight.to(out.device)
    return fused / counts.to(fused.device).view(1, -1, 1, 1, 1)


class MimicMotionVideoModel(nn.Module):
    """The diffusion model: (halves*F, 8, h, w) scaled latents ++ reference latent -> v-prediction.

    Per call: the halves are put in the official [uncond, cond] order (the diffusers-0.27 batch
    quirk depends on it), every tile runs the ControlNet (when active at this step) and the UNet, and
    the tiles' v are fused. The quirk is on where the ControlNet runs and the halves come batched,
    as in the official DisPose pipeline (MimicMotion's own pipeline calls the UNet per half, which
    never has it); a host that runs the halves one at a time (low memory, ComfyUI's MultiGPU CFG
    split) gets the corrected attention there.
    """

    def __init__(self, unet: nn.Module, pose_net: nn.Module):
        super().__init__()
        self.unet, self.pose_net = unet, pose_net
        self._warned_unbatched = False

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (a host casts the input to it)."""
        return compute_placement(self.unet)[1]

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                control: object = None, transformer_options: dict | None = None, *,
                time_ids: torch.Tensor, pose_frames: Sequence[PoseFrames | None],
                num_video_frames: int | None = None, **_unused: object) -> torch.Tensor:
        """``pose_frames``: one entry per CFG half in the batch's order (None: no poses, the
        unconditional half); PoseNet runs on each tile's frames as the tile runs."""
        if control is not None:
            raise InputError("A core ControlNet is attached to MimicMotion's conditioning; it does not apply to "
                             "this model. Use DisPose's Hybrid ControlNet Apply and Apply DisPose Control instead.")
        options = transformer_options or {}
        halves = list(options.get("cond_or_uncond") or [0] * (x.shape[0] // (num_video_frames or x.shape[0])))
        n = len(halves)
        frames = x.shape[0] // n
        order = sorted(range(n), key=lambda i: -halves[i])  # official order: [uncond, cond]
        device, dtype = compute_placement(self.unet)

        def per_half(t: torch.Tensor) -> torch.Tensor:  # (n*F, ...) -> (n, F, ...) in the official order
            return t.reshape(n, frames, *t.shape[1:])[order]

        sample = per_half(x).to(device, dtype)
        rows = per_half(context)[:, 0].to(device, dtype)
        ids = per_half(time_ids)[:, 0].to(device, dtype)
        t = per_half(timesteps.reshape(-1, 1))[:, 0, 0]
        sigmas = options.get("sigmas")  # the host's sigma per row; else from t = 0.25 ln sigma
        sigma = float(sigmas.reshape(-1)[0]) if sigmas is not None else float(torch.exp(4.0 * t[0].float()))

        run: ControlRun | None = options.get(CONTROL)
        active = run is not None and run.active(sigma, options.get("sample_sigmas"))
        quirk = bool(options.get(BATCH_QUIRK, True))
        self._set_quirk(quirk and active, n, run)
        height, width = self._pixel_size(x)
        tile_size, overlap = options.get(TILES, DEFAULT_TILES)
        tile = min(tile_size, frames)
        tiles = tile_indices(frames, tile, min(overlap, tile - 1))
        hooks: TileHooks = options.get(TILE_HOOKS) or TileHooks()
        sources = ordered_pose_frames(pose_frames, order, frames, height, width)
        poses = tile_pose_latents(self.pose_net, sources, tiles, dtype)

        def predict(number: int, idx: torch.Tensor) -> torch.Tensor:
            if hooks.before is not None:
                hooks.before()
            xt = sample[:, idx]
            tile_poses = next_tile(poses)
            down = mid = None
            if active:
                c = run.control
                features = run.features(idx, height, width)
                down, mid = c.controlnet(xt, t, rows, ids, features.motion, features.points,
                                         conditioning_scale=c.strength, motion_scale=c.motion_strength,
                                         point_scale=c.point_strength)
            out = self.unet(xt, t, rows, ids, pose_latents=tile_poses,
                            down_block_additional_residuals=down, mid_block_additional_residual=mid)
            if hooks.after is not None:
                hooks.after()
            return out

        with closing(poses):  # an interrupt between tiles also stops the drawing worker
            v = fuse_tiles(tiles, tile_weights(tile).to(device), frames, predict)
        return v[torch.tensor(order).argsort()].flatten(0, 1)

    @staticmethod
    def _pixel_size(x: torch.Tensor) -> tuple[int, int]:
        return int(x.shape[-2]) * 8, int(x.shape[-1]) * 8

    def _set_quirk(self, wanted: bool, halves: int, run: ControlRun | None) -> None:
        """Per call, from the options: the module's flag reflects the current call only."""
        if wanted and halves == 1 and not self._warned_unbatched:
            log.warning("MimicMotion: the CFG halves were run one at a time (memory or multi-GPU split); the "
                        "official diffusers-0.27 batch quirk needs them batched, so these steps use the "
                        "corrected attention.")
            self._warned_unbatched = True
        if getattr(self.unet, "official_batch_quirk", None) != wanted:
            set_official_batch_quirk(self.unet, wanted)
        if run is not None and getattr(run.control.controlnet, "official_batch_quirk", None) != wanted:
            set_official_batch_quirk(run.control.controlnet, wanted)
