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
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..models.cast_layers import compute_placement
from ..models.svd_trunk import set_official_batch_quirk
from .control import ControlFeatures, ControlInputs, control_features
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
    """The DisPose control during one sampling run: its step-invariant motion and keypoint features
    are computed on the first model call (the ControlNet is loaded then) and kept until the run ends."""

    def __init__(self, control: ControlInputs, chunk: int = DEFAULT_TILES[0]):
        self.control, self.chunk = control, chunk
        self._features: ControlFeatures | None = None

    def features(self, height: int, width: int) -> ControlFeatures:
        if self._features is None:
            self._features = control_features(self.control, height, width, self.chunk)
        return self._features

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


def pose_latents(pose_net: nn.Module, poses: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """PoseNet over every (F,H,W,3) pose frame (uint8, or float in [0,1]) once -> (F,C0,h,w) in
    ``dtype`` on the PoseNet's device; ``chunk`` frames at a time are brought to [-1,1] and run, which
    bounds the full-resolution activations and leaves the video's poses in their compact form."""
    device, net_dtype = compute_placement(pose_net)
    return torch.cat([pose_net(pose_pm1(poses[s:s + chunk]).to(device, net_dtype)).to(dtype)
                      for s in range(0, poses.shape[0], chunk)])


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

    @property
    def pose_channels(self) -> int:
        return int(self.unet.config.block_out_channels[0])

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                control: object = None, transformer_options: dict | None = None, *,
                time_ids: torch.Tensor, pose_latents: torch.Tensor, num_video_frames: int | None = None,
                **_unused: object) -> torch.Tensor:
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
        poses = per_half(pose_latents)
        t = per_half(timesteps.reshape(-1, 1))[:, 0, 0]
        sigmas = options.get("sigmas")  # the host's sigma per row; else from t = 0.25 ln sigma
        sigma = float(sigmas.reshape(-1)[0]) if sigmas is not None else float(torch.exp(4.0 * t[0].float()))

        run: ControlRun | None = options.get(CONTROL)
        active = run is not None and run.active(sigma, options.get("sample_sigmas"))
        quirk = bool(options.get(BATCH_QUIRK, True))
        self._set_quirk(quirk and active, n, run)
        features = run.features(*self._pixel_size(x)) if active else None
        tile_size, overlap = options.get(TILES, DEFAULT_TILES)
        tile = min(tile_size, frames)
        tiles = tile_indices(frames, tile, min(overlap, tile - 1))
        hooks: TileHooks = options.get(TILE_HOOKS) or TileHooks()

        def predict(number: int, idx: torch.Tensor) -> torch.Tensor:
            if hooks.before is not None:
                hooks.before()
            xt = sample[:, idx]
            down = mid = None
            if features is not None:
                c = run.control
                down, mid = c.controlnet(
                    xt, t, rows, ids, features.motion[idx],
                    None if features.points is None else [p[idx] for p in features.points],
                    conditioning_scale=c.strength, motion_scale=c.motion_strength, point_scale=c.point_strength)
            out = self.unet(xt, t, rows, ids, pose_latents=poses[:, idx].flatten(0, 1).to(device),
                            down_block_additional_residuals=down, mid_block_additional_residual=mid)
            if hooks.after is not None:
                hooks.after()
            return out

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
