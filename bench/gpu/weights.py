"""Seeded random weights at a chosen set of widths, fed to the pack's own loaders instead of files.

The benchmark runs the path users run (the nodes, their loaders, ComfyUI's model management) but no
weights exist on the benchmark machine. :func:`random_weights` therefore patches only the points
where the loaders read tensors from disk: each checkpoint becomes a seeded random state dict with the
names and shapes the loader expects (built on the meta device, filled on ``device`` -- the GPU when
there is one -- and handed over on the CPU, where a loaded file would be). The loaders, strict key
checks, dtype casts and fp8 storage then run unchanged. Configs come from :class:`Widths`: the real
SVD xt 1.1 / SD 1.5 / DisPose / CMP widths on the GPU, the tiny model folder's widths in the smoke run.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import torch

from dispose_core.loading import checkpoint, dispose, mimicmotion, sd15, svd
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.svd_single_file import (SVD_XT_FEATURE_EXTRACTOR_CONFIG, SVD_XT_IMAGE_ENCODER_CONFIG,
                                                  SVD_XT_SCHEDULER_CONFIG, SVD_XT_UNET_CONFIG, SVD_XT_VAE_CONFIG)
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
from dispose_core.models.posenet import PoseNet
from dispose_core.models.unet import MimicMotionUNet
from dispose_core.motion import cmp
from dispose_core.motion.cmp import CMPConfig, CMPModel

SEED = 2025


@dataclass(frozen=True)
class Widths:
    """The configs every model is built from (what the weight files' folders would say)."""

    svd: dict[str, dict]  # unet, vae, image_encoder, scheduler, feature_extractor
    sd15: dict[str, dict]  # unet, vae, text_encoder
    dims: ControlNetDims = field(default_factory=ControlNetDims)
    cmp: CMPConfig = field(default_factory=CMPConfig)


def real_widths() -> Widths:
    """SVD xt 1.1, SD 1.5, DisPose and CMP at the widths of the released weights."""
    return Widths(svd={"unet": SVD_XT_UNET_CONFIG, "vae": SVD_XT_VAE_CONFIG, "image_encoder": SVD_XT_IMAGE_ENCODER_CONFIG,
                       "scheduler": SVD_XT_SCHEDULER_CONFIG, "feature_extractor": SVD_XT_FEATURE_EXTRACTOR_CONFIG},
                  sd15=dict(sd15.SD15_CONFIGS))


def tiny_widths(models_dir: Path) -> Widths:
    """The widths of the tiny model folder (``dispose_core.tiny``) under ``models_dir``."""
    from dispose_core.tiny.cmp import TINY_CMP
    from dispose_core.tiny.dispose import TINY_MOTION_CHANNELS, TINY_POINT_MID_DIM
    from dispose_core.tiny.sd15 import TINY_DIFT_CHANNELS

    source = svd.read_svd_folder(models_dir / "diffusers" / BY_KEY["svd"].name)
    root = models_dir / "diffusers" / BY_KEY["sd15"].name
    return Widths(
        svd={"unet": source.unet_config, "vae": source.vae_config, "image_encoder": source.image_encoder_config,
             "scheduler": source.scheduler_config, "feature_extractor": source.feature_extractor_config},
        sd15={sub: checkpoint.read_json(root / sub / "config.json", f"tiny SD 1.5 {sub}")
              for sub in ("unet", "vae", "text_encoder")},
        dims=ControlNetDims(TINY_MOTION_CHANNELS, TINY_DIFT_CHANNELS, TINY_POINT_MID_DIM), cmp=TINY_CMP)


def random_state(expected: Mapping[str, torch.Tensor | torch.Size], seed: int,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """Random float16 tensors (integer buffers: zeros) with ``expected``'s names and shapes, on the CPU.

    Matrices and kernels get std 1/sqrt(fan-in), vectors 0.1, BatchNorm variances 1, so activations
    stay finite through the deep networks; drawn on ``device`` (fast on a GPU), in sorted-name order.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    state = {}
    for name in sorted(expected):
        entry = expected[name]
        shape = tuple(entry.shape if isinstance(entry, torch.Tensor) else entry)
        if isinstance(entry, torch.Tensor) and not entry.dtype.is_floating_point:
            state[name] = torch.zeros(shape, dtype=entry.dtype)
            continue
        if name.endswith("running_var"):
            state[name] = torch.ones(shape, dtype=torch.float16)
            continue
        std = (torch.Size(shape[1:]).numel() ** -0.5) if len(shape) > 1 else 0.1
        values = torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * std
        state[name] = values.to(torch.float16).cpu()
    return state


def _meta(factory) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return factory().state_dict()


@dataclass(frozen=True)
class RandomSVD(svd.SVDSource):
    """An SVD xt source whose configs are ``widths.svd`` and whose VAE / CLIP weights are random."""

    unet_config: dict
    vae_config: dict
    image_encoder_config: dict
    scheduler_config: dict
    feature_extractor_config: dict
    device: torch.device
    drawn: dict = field(default_factory=dict, compare=False, repr=False)  # RandomCheckpoints.drawn
    vae_file: Path = Path("random-weights")
    image_encoder_file: Path = Path("random-weights")

    @classmethod
    def of(cls, widths: Widths, device: torch.device, drawn: dict | None = None) -> "RandomSVD":
        return cls(**{f"{k}_config": v for k, v in widths.svd.items()}, device=device,
                   drawn=drawn if drawn is not None else {})

    def read_vae(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        self.drawn["svd_vae"] = random_state(expected, SEED + 1, self.device)
        return dict(self.drawn["svd_vae"])

    def read_image_encoder(self, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
        self.drawn["svd_image_encoder"] = random_state(expected, SEED + 2, self.device)
        return dict(self.drawn["svd_image_encoder"])


class RandomCheckpoints:
    """The state dict each checkpoint file would hold, by file name, drawn once and kept.

    ``drawn`` keeps the state dicts handed to the SVD and SD 1.5 loaders (``svd_vae``,
    ``svd_image_encoder``, ``sd15_unet``, ...), so the official comparator gets the very same tensors.
    """

    def __init__(self, widths: Widths, device: torch.device):
        self.widths, self.device = widths, device
        self.drawn: dict[str, dict[str, torch.Tensor]] = {}

    def _mimicmotion(self) -> dict[str, torch.Tensor]:
        unet_config = self.widths.svd["unet"]
        unet = _meta(lambda: MimicMotionUNet.from_config(unet_config))
        pose = _meta(lambda: PoseNet(noise_latent_channels=unet_config["block_out_channels"][0]))
        state = random_state({f"unet.{k}": v for k, v in unet.items()}, SEED + 3, self.device)
        return state | random_state({f"pose_net.{k}": v for k, v in pose.items()}, SEED + 4, self.device)

    def _dispose(self) -> dict[str, torch.Tensor]:
        return random_state(_meta(lambda: HybridControlNet(self.widths.svd["unet"], self.widths.dims)),
                            SEED + 5, self.device)

    def _cmp(self) -> dict[str, torch.Tensor]:
        return random_state(_meta(lambda: CMPModel(self.widths.cmp)), SEED + 6, self.device)

    @functools.cache
    def state(self, key: str) -> dict[str, torch.Tensor]:
        return getattr(self, f"_{key}")()

    def read(self, path: str | Path, what: str = "checkpoint") -> dict:
        """``read_checkpoint``'s stand-in: random weights for our three checkpoint files, else the file."""
        for key in ("mimicmotion", "dispose", "cmp"):
            if Path(path).name == BY_KEY[key].name:
                return dict(self.state(key))
        return _READ_CHECKPOINT(path, what)

    def sd15_component(self, root: Path, sub: str, stems: tuple[str, ...], dtype: torch.dtype) -> tuple[dict, dict, Path]:
        """``sd15._component``'s stand-in: the ``widths.sd15`` config and random weights."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        config = self.widths.sd15[sub]
        build = {"unet": lambda: UNet2DConditionModel.from_config(dict(config)),
                 "vae": lambda: AutoencoderKL.from_config(dict(config)),
                 "text_encoder": lambda: CLIPTextModel(CLIPTextConfig.from_dict(dict(config)))}[sub]
        expected = {k: v for k, v in _meta(build).items() if not k.endswith("position_ids")}
        self.drawn[f"sd15_{sub}"] = random_state(expected, SEED + 7 + len(sub), self.device)
        return config, dict(self.drawn[f"sd15_{sub}"]), Path("random-weights")


_READ_CHECKPOINT = checkpoint.read_checkpoint


@contextmanager
def random_weights(widths: Widths, device: torch.device) -> Iterator[RandomCheckpoints]:
    """Within this block the pack's loaders build every model at ``widths`` with random weights."""
    checkpoints = RandomCheckpoints(widths, device)
    with ExitStack() as stack:
        for module in (checkpoint, mimicmotion, dispose, cmp, sd15):
            stack.enter_context(mock.patch.object(module, "read_checkpoint", checkpoints.read))
        stack.enter_context(mock.patch.object(mimicmotion, "read_svd",
                                              lambda path, dtype: RandomSVD.of(widths, device, checkpoints.drawn)))
        stack.enter_context(mock.patch.object(sd15, "_component", checkpoints.sd15_component))
        yield checkpoints
