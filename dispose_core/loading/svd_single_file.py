"""Stable Video Diffusion xt as ComfyUI users have it: the single file ``svd_xt_1_1.safetensors``.

Stability's SGM layout (what ComfyUI's ``ImageOnlyCheckpointLoader`` reads): the UNet under
``model.diffusion_model.*``, the temporal VAE under ``first_stage_model.*``, the OpenCLIP ViT-H/14
image tower under ``conditioner.embedders.0.open_clip.model.visual.*``. MimicMotion needs only the
VAE and the image tower (its UNet comes from ``MimicMotion_1-1.pth``), so only those tensors are
read (memory-mapped: the 3 GB UNet part is never loaded) and converted strictly (``sgm_keys``):
every tensor the modules need must be present, and any key outside the known prefixes is an error.

The file carries no configs, so the published SVD xt 1.1 configs are used and the tensor shapes
are checked against them. A file may carry its own diffusers configs as JSON in the safetensors
metadata under ``dispose.svd_configs`` (the tiny-model factory writes its tiny configs there).

SVD xt and SVD (14 frames) have the same architecture: the frame count is a training setting, not
a weight, so the two cannot be told apart from the file; what is checked is the architecture (a
temporal VAE decoder and an OpenCLIP image tower), which rejects SD 1.x/2.x/XL checkpoints, the
``svd_image_decoder`` variant (frame-wise decoder) and SV3D (no VAE encoder under
``first_stage_model``).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointKeyError, ModelFileError
from .checkpoint import name_preview, require_file
from .layout import BY_KEY, SVD_SINGLE_FILE
from .sgm_keys import CLIP_PREFIX, VAE_PREFIX, clip_from_open_clip, clip_key_map, vae_from_sgm, vae_key_map
from .svd import SVDSource, read_svd_folder

CONFIG_METADATA_KEY = "dispose.svd_configs"
# Parts of an SVD single file that MimicMotion does not use: the SVD UNet (replaced by MimicMotion's),
# the other conditioner embedders (frame-rate / motion embedders, the conditioning-frame encoder)
# and training-only state. Counted in the report, never read.
IGNORED_PREFIXES = ("model.diffusion_model.", "conditioner.", "denoiser.", "model_ema.")
_TEMPORAL_DECODER_KEY = VAE_PREFIX + "decoder.conv_out.time_mix_conv.weight"
_OTHER_FAMILIES = (  # (key prefix, what a file with it is)
    ("cond_stage_model.transformer.", "a Stable Diffusion 1.x checkpoint (CLIP text encoder)"),
    ("cond_stage_model.model.", "a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder)"),
    ("conditioner.embedders.1.model.", "a Stable Diffusion XL checkpoint"),
    ("conditioner.embedders.0.model.", "a Stable Diffusion XL refiner checkpoint"),
)

# The published SVD xt 1.1 diffusers configs (unet/vae/image_encoder config.json, scheduler, CLIP
# preprocessing); the same values are in tests/reference/manifests (unet_config_used, optional keys).
SVD_XT_UNET_CONFIG: dict = {
    "_class_name": "UNetSpatioTemporalConditionModel", "sample_size": 96, "in_channels": 8, "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    "block_out_channels": [320, 640, 1280, 1280], "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768, "layers_per_block": 2, "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1, "num_attention_heads": [5, 10, 20, 20], "num_frames": 25,
}
SVD_XT_VAE_CONFIG: dict = {
    "_class_name": "AutoencoderKLTemporalDecoder", "in_channels": 3, "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2, "latent_channels": 4, "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True,
}
SVD_XT_IMAGE_ENCODER_CONFIG: dict = {
    "model_type": "clip_vision_model", "hidden_size": 1280, "intermediate_size": 5120, "projection_dim": 1024,
    "num_hidden_layers": 32, "num_attention_heads": 16, "num_channels": 3, "image_size": 224, "patch_size": 14,
    "hidden_act": "gelu", "layer_norm_eps": 1e-5,
}
SVD_XT_SCHEDULER_CONFIG: dict = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.24.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": False, "sigma_max": 700.0,
    "sigma_min": 0.002, "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading",
    "timestep_type": "continuous", "trained_betas": None, "use_karras_sigmas": True,
}
SVD_XT_FEATURE_EXTRACTOR_CONFIG: dict = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
    "do_normalize": True, "do_rescale": True, "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
SVD_XT_CONFIGS: dict[str, dict] = {
    "unet": SVD_XT_UNET_CONFIG, "vae": SVD_XT_VAE_CONFIG, "image_encoder": SVD_XT_IMAGE_ENCODER_CONFIG,
    "scheduler": SVD_XT_SCHEDULER_CONFIG, "feature_extractor": SVD_XT_FEATURE_EXTRACTOR_CONFIG,
}


@dataclass(frozen=True)
class SingleFileReport:
    """What a single-file load took from the file and what it left unread."""

    file: Path
    vae_tensors: int
    image_encoder_tensors: int
    ignored: dict[str, int]  # ignored prefix -> number of tensors under it

    def __str__(self) -> str:
        skipped = ", ".join(f"{n} under {p}*" for p, n in self.ignored.items() if n) or "none"
        return (f"SVD single file '{self.file.name}': {self.vae_tensors} VAE tensors (first_stage_model.*), "
                f"{self.image_encoder_tensors} CLIP image-encoder tensors (open_clip visual); ignored: {skipped}")


def _open(path: Path) -> Any:
    """safetensors' lazy reader (memory-mapped); ModelFileError for a file that is not safetensors."""
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors raises its own error type for a bad header or a truncated file
        raise ModelFileError(f"SVD single file: cannot read '{path}': {exc}") from exc


def _classify(path: Path, keys: list[str]) -> None:
    """ModelFileError unless the keys look like an SVD img2vid checkpoint with the temporal VAE."""
    has_clip = any(k.startswith(CLIP_PREFIX) for k in keys)
    has_encoder = any(k.startswith(VAE_PREFIX + "encoder.") for k in keys)
    if has_clip and has_encoder and _TEMPORAL_DECODER_KEY in keys:
        return
    found = next((what for prefix, what in _OTHER_FAMILIES if any(k.startswith(prefix) for k in keys)), None)
    if found is None and has_clip and not has_encoder:
        found = "an SVD-family checkpoint without a VAE encoder under first_stage_model (SV3D / SV4D?)"
    elif found is None and has_clip:
        found = "an SVD checkpoint with the frame-wise image decoder (svd_image_decoder), not the temporal VAE"
    elif found is None:
        found = f"a file with none of SVD's parts (first keys: {name_preview(keys)})"
    svd = BY_KEY["svd"]
    raise ModelFileError(
        f"'{path.name}' is {found}. MimicMotion needs Stable Video Diffusion img2vid xt: "
        f"{SVD_SINGLE_FILE.name} from {SVD_SINGLE_FILE.source} in models/{SVD_SINGLE_FILE.folder}/, "
        f"or the diffusers folder {svd.name} in models/{svd.folder}/."
    )


def _configs(path: Path, metadata: dict[str, str] | None) -> dict[str, dict]:
    text = (metadata or {}).get(CONFIG_METADATA_KEY)
    if text is None:
        return SVD_XT_CONFIGS
    try:
        configs = json.loads(text)
        return {name: dict(configs[name]) for name in SVD_XT_CONFIGS}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(
            f"SVD single file: '{path}' has unreadable '{CONFIG_METADATA_KEY}' metadata: {exc}") from exc


def _unknown_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if not k.startswith((VAE_PREFIX, CLIP_PREFIX) + IGNORED_PREFIXES)]


@dataclass(frozen=True)
class SVDSingleFile(SVDSource):
    """An SVD xt single file: configs (published or from its metadata) and what was ignored."""

    path: Path
    report: SingleFileReport

    @property
    def vae_file(self) -> Path:
        return self.path

    @property
    def image_encoder_file(self) -> Path:
        return self.path

    def _read(self, prefix: str, key_map, convert, expected: dict[str, torch.Size], what: str
              ) -> dict[str, torch.Tensor]:
        """The tensors under ``prefix``, checked against the names ``key_map`` gives ``expected``, converted."""
        needed = set(key_map(expected).values())
        with _open(self.path) as handle:
            present = {k for k in handle.keys() if k.startswith(prefix)}
            tensors = {k: handle.get_tensor(k) for k in present & needed}
        missing, unexpected = needed - present, present - needed
        if missing or unexpected:
            parts = [f"{what}: '{self.path}' does not match the SVD xt architecture"]
            if missing:
                parts.append(f"{len(missing)} missing keys: {name_preview(missing)}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected keys: {name_preview(unexpected)}")
            parts.append(f"Check that the file is {SVD_SINGLE_FILE.name} (or svd_xt.safetensors), "
                         "not a partial download.")
            raise CheckpointKeyError("; ".join(parts))
        try:
            return convert(tensors, expected)
        except RuntimeError as exc:  # a reshape of a tensor with the wrong number of elements
            raise CheckpointKeyError(f"{what}: '{self.path}' has a tensor of the wrong size: {exc}") from exc

    def read_vae(self, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
        return self._read(VAE_PREFIX, vae_key_map, vae_from_sgm, expected, "SVD VAE (first_stage_model.*)")

    def read_image_encoder(self, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
        return self._read(CLIP_PREFIX, clip_key_map, clip_from_open_clip, expected,
                          "SVD image encoder (open_clip visual)")


def read_svd_single_file(path: str | Path) -> SVDSingleFile:
    """Check that ``path`` is an SVD xt single file and list what it holds (no tensors read yet)."""
    path = require_file(path, "SVD single file", f"Download {SVD_SINGLE_FILE.name} from {SVD_SINGLE_FILE.source}.")
    if path.suffix != ".safetensors":
        raise ModelFileError(f"SVD single file: '{path.name}' is not a .safetensors file; use {SVD_SINGLE_FILE.name} "
                             f"from {SVD_SINGLE_FILE.source}.")
    with _open(path) as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    _classify(path, keys)
    unknown = _unknown_keys(keys)
    if unknown:
        raise CheckpointKeyError(
            f"SVD single file: '{path}' has {len(unknown)} keys outside first_stage_model.*, "
            f"{CLIP_PREFIX}* and the ignored {', '.join(p + '*' for p in IGNORED_PREFIXES)}: "
            f"{name_preview(unknown)}. Check that it is {SVD_SINGLE_FILE.name}."
        )
    read = [k for k in keys if k.startswith((VAE_PREFIX, CLIP_PREFIX))]
    ignored = Counter(next(p for p in IGNORED_PREFIXES if k.startswith(p)) for k in keys if k not in set(read))
    report = SingleFileReport(
        path, vae_tensors=sum(k.startswith(VAE_PREFIX) for k in read),
        image_encoder_tensors=sum(k.startswith(CLIP_PREFIX) for k in read),
        ignored={p: ignored.get(p, 0) for p in IGNORED_PREFIXES},
    )
    configs = _configs(path, metadata)
    return SVDSingleFile(
        unet_config=configs["unet"], vae_config=configs["vae"], image_encoder_config=configs["image_encoder"],
        scheduler_config=configs["scheduler"], feature_extractor_config=configs["feature_extractor"],
        path=path, report=report,
    )


def read_svd(path: str | Path, dtype: torch.dtype = torch.float32) -> SVDSource:
    """An SVD xt diffusers folder (weight variant chosen for ``dtype``) or single file."""
    path = Path(path)
    return read_svd_single_file(path) if path.is_file() else read_svd_folder(path, dtype)
