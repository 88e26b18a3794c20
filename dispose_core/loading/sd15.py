"""Load Stable Diffusion 1.5 (a local diffusers folder or a single file) as a DIFT featurizer.

What DIFT needs and nothing more: the UNet, the VAE encoder + quant_conv (the decoder is never
built), the scheduler's betas, and the CLIP text encoder + tokenizer only long enough to embed the
two fixed prompts. Every component is checked strictly against its architecture (the official
``from_pretrained`` only logs mismatches) and built on the meta device where possible, so no
random initialisation of 860 M parameters happens before the weights arrive. Offline only.

A single-file SD 1.5 checkpoint (the original LDM layout, e.g. ``v1-5-pruned-emaonly.safetensors``)
works too: its keys are converted with diffusers' own single-file converters, the configs are the
standard SD 1.5 ones, and, as such a file has no tokenizer, the official prompt's known token ids
are used.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..dift.featurizer import DIFT_PROMPT, DiftFeaturizer, ddim_alphas_cumprod
from ..errors import ModelFileError
from .checkpoint import check_dtype, load_strict, read_checkpoint, read_json, require_file
from .layout import BY_KEY

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

# The VAE state dict DIFT keeps; decoder.* and post_quant_conv.* of the file are not read into anything.
_VAE_PREFIXES = ("encoder.", "quant_conv.")
# Old diffusers names of the VAE mid-block attention (still in some SD 1.5 downloads).
_OLD_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
# Persistent in old transformers, a non-persistent buffer now; safe to drop.
_OLD_TEXT_BUFFERS = ("text_model.embeddings.position_ids",)
_TEXT_PREFIX = "text_model."

# Standard SD 1.5 configs, for single-file checkpoints (which carry none).
SD15_CONFIGS: dict[str, dict] = {
    "unet": {
        "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640, 1280, 1280], "norm_num_groups": 32, "cross_attention_dim": 768,
        "attention_head_dim": 8,
    },
    "vae": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512], "sample_size": 512, "scaling_factor": 0.18215,
    },
    "text_encoder": {
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5, "projection_dim": 768,
    },
}
# CLIP ids of the official prompt and of the empty prompt (without padding), for checkpoints without a tokenizer.
_KNOWN_PROMPT_IDS = {DIFT_PROMPT: (49406, 1125, 539, 320, 2751, 49407), "": (49406, 49407)}
_PAD_ID = 49407
_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _hint() -> str:
    entry = BY_KEY["sd15"]
    return f"The '{entry.name}' folder is incomplete; download the missing file from {entry.source}."


def weights_file(folder: Path, stems: tuple[str, ...], dtype: torch.dtype, what: str) -> Path:
    """The component's weight file: the fp16 variant or the full-precision one, safetensors first.

    For float32 the full-precision file is preferred when both exist; otherwise the (smaller)
    fp16 variant, which is what the official code loads.
    """
    variants = ("", ".fp16") if dtype == torch.float32 else (".fp16", "")
    names = [f"{stem}{v}.{ext}" for ext in ("safetensors", "bin") for v in variants for stem in stems]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(
        f"{what}: no weight file in folder '{folder}' (looked for {', '.join(names)}). {_hint()}"
    )


def build_unet(config: Mapping, state_dict: Mapping[str, torch.Tensor], *, file: str | Path) -> nn.Module:
    """A diffusers UNet2DConditionModel built on the meta device, then filled strictly."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(dict(config))
    extras = ("class_embed_type", "num_class_embeds", "addition_embed_type", "encoder_hid_dim", "center_input_sample")
    if any(unet.config.get(name) for name in extras):
        raise ModelFileError(f"SD 1.5 UNet: '{file}' has class/added embeddings; DIFT needs a plain SD 1.5 UNet.")
    load_strict(unet, dict(state_dict), file=file, what="SD 1.5 UNet")
    return unet.eval().requires_grad_(False)


def build_vae_encoder(config: Mapping, state_dict: Mapping[str, torch.Tensor], *, file: str | Path) -> nn.Module:
    """A diffusers AutoencoderKL without decoder and post_quant_conv, filled strictly."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL.from_config(dict(config))
    vae.decoder = None
    vae.post_quant_conv = None
    kept = {}
    for key, value in state_dict.items():
        if key.startswith(_VAE_PREFIXES):
            for old, new in _OLD_VAE_ATTENTION.items():
                key = key.replace(old, new) if "mid_block.attentions" in key else key
            kept[key] = value
    load_strict(vae, kept, file=file, what="SD 1.5 VAE encoder")
    return vae.eval().requires_grad_(False)


def build_text_encoder(config: Mapping, state_dict: Mapping[str, torch.Tensor], *, file: str | Path) -> nn.Module:
    """A transformers CLIPTextModel filled strictly (built on CPU: it has non-persistent buffers)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig.from_dict(dict(config)))
    # Files name the keys "text_model.*"; transformers >= 5 dropped that wrapper module.
    prefix = "" if any(k.startswith(_TEXT_PREFIX) for k in model.state_dict()) else _TEXT_PREFIX
    state_dict = {k.removeprefix(prefix): v for k, v in state_dict.items() if k not in _OLD_TEXT_BUFFERS}
    load_strict(model, state_dict, file=file, what="SD 1.5 text encoder")
    return model.eval().requires_grad_(False)


@torch.no_grad()
def encode_prompt(text_encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """CLIP last hidden state (final LayerNorm applied) of token ids (1, 77), as diffusers' SD pipeline."""
    return text_encoder(input_ids.to(text_encoder.device)).last_hidden_state


def tokenize(tokenizer: CLIPTokenizer, text: str, max_length: int) -> torch.Tensor:
    """Token ids (1, max_length): <|startoftext|> ... <|endoftext|>, padded with the pad token."""
    return tokenizer(text, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids


def load_tokenizer(folder: Path) -> CLIPTokenizer:
    """The CLIP tokenizer from vocab.json + merges.txt (+ tokenizer_config.json if present)."""
    from transformers import CLIPTokenizer

    for name in ("vocab.json", "merges.txt"):
        require_file(folder / name, "SD 1.5 tokenizer", _hint())
    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # malformed vocab/merges
        raise ModelFileError(f"SD 1.5 tokenizer: cannot read '{folder}': {exc}") from exc


def _component(root: Path, sub: str, stems: tuple[str, ...], dtype: torch.dtype) -> tuple[dict, dict, Path]:
    folder = root / sub
    config = read_json(folder / "config.json", f"SD 1.5 {sub} config", _hint())
    file = weights_file(folder, stems, dtype, f"SD 1.5 {sub}")
    return config, read_checkpoint(file, f"SD 1.5 {sub}"), file


def load_dift(sd15_dir: str | Path, dtype: torch.dtype = torch.float32, *, prompt: str = DIFT_PROMPT) -> DiftFeaturizer:
    """Build the DIFT featurizer from a Stable Diffusion 1.5 diffusers folder (on CPU, in ``dtype``).

    A single-file SD 1.5 checkpoint is accepted in place of the folder. The prompt and the empty
    prompt are embedded here, in float32, and the text encoder is then dropped: DIFT needs
    nothing else from it.
    """
    check_dtype(dtype, "DIFT")
    root = Path(sd15_dir)
    if root.is_file() and root.suffix in _SINGLE_FILE_SUFFIXES:
        return load_dift_single_file(root, dtype, prompt=prompt)
    BY_KEY["sd15"].require(root)

    scheduler = read_json(root / "scheduler" / "scheduler_config.json", "SD 1.5 scheduler config", _hint())
    if scheduler.get("trained_betas"):
        raise ModelFileError("SD 1.5 scheduler config: trained_betas are not supported; use the SD 1.5 scheduler folder.")
    alphas_cumprod = ddim_alphas_cumprod(
        scheduler.get("beta_start", 0.00085), scheduler.get("beta_end", 0.012),
        scheduler.get("beta_schedule", "scaled_linear"), scheduler.get("num_train_timesteps", 1000),
    )

    text_config, text_sd, text_file = _component(root, "text_encoder", ("model", "pytorch_model"), torch.float32)
    text_encoder = build_text_encoder(text_config, text_sd, file=text_file)
    del text_sd
    tokenizer = load_tokenizer(root / "tokenizer")
    max_length = int(text_encoder.config.max_position_embeddings)
    embeds = [encode_prompt(text_encoder, tokenize(tokenizer, text, max_length)) for text in (prompt, "")]
    del text_encoder

    vae_config, vae_sd, vae_file = _component(root, "vae", ("diffusion_pytorch_model",), dtype)
    vae = build_vae_encoder(vae_config, vae_sd, file=vae_file)
    del vae_sd
    unet_config, unet_sd, unet_file = _component(root, "unet", ("diffusion_pytorch_model",), dtype)
    unet = build_unet(unet_config, unet_sd, file=unet_file)
    del unet_sd
    return DiftFeaturizer(unet, vae, embeds[0], embeds[1], alphas_cumprod).to(dtype)


def _padded_ids(prompt: str, max_length: int) -> torch.Tensor:
    if prompt not in _KNOWN_PROMPT_IDS:
        raise ModelFileError(
            f"DIFT: a single-file checkpoint has no tokenizer, so only the official prompt '{DIFT_PROMPT}' "
            f"works (got '{prompt}'); use the diffusers folder {BY_KEY['sd15'].name} for other prompts."
        )
    ids = _KNOWN_PROMPT_IDS[prompt]
    return torch.tensor([ids + (_PAD_ID,) * (max_length - len(ids))])


def load_dift_single_file(path: str | Path, dtype: torch.dtype = torch.float32, *,
                          prompt: str = DIFT_PROMPT) -> DiftFeaturizer:
    """Build the DIFT featurizer from a single-file SD 1.5 checkpoint (original LDM key names)."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    max_length = int(SD15_CONFIGS["text_encoder"]["max_position_embeddings"])
    token_ids = [_padded_ids(text, max_length) for text in (prompt, "")]  # fails fast on other prompts
    state = read_checkpoint(path, "SD 1.5 checkpoint")
    if isinstance(state.get("state_dict"), Mapping):  # .ckpt files wrap the weights
        state = dict(state["state_dict"])
    vae_state = {k: v for k, v in state.items()
                 if k.startswith(("first_stage_model.encoder.", "first_stage_model.quant_conv."))}
    try:
        unet_sd = convert_ldm_unet_checkpoint(state, SD15_CONFIGS["unet"])
        vae_sd = convert_ldm_vae_checkpoint(vae_state, SD15_CONFIGS["vae"])
        text_sd = convert_ldm_clip_checkpoint(state)
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelFileError(f"SD 1.5 checkpoint: '{path}' is not in the SD 1.5 (LDM) layout: {exc}") from exc
    del state, vae_state

    text_encoder = build_text_encoder(SD15_CONFIGS["text_encoder"], text_sd, file=path)
    embeds = [encode_prompt(text_encoder, ids) for ids in token_ids]
    del text_encoder, text_sd
    vae = build_vae_encoder(SD15_CONFIGS["vae"], vae_sd, file=path)
    unet = build_unet(SD15_CONFIGS["unet"], unet_sd, file=path)
    return DiftFeaturizer(unet, vae, embeds[0], embeds[1], ddim_alphas_cumprod()).to(dtype)
