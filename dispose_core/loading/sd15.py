"""Load Stable Diffusion 1.5 from a local diffusers folder as a DIFT featurizer.

What DIFT needs and nothing more: the UNet, the VAE encoder + quant_conv (the decoder is never
built), the scheduler's betas, and the CLIP text encoder + tokenizer only long enough to embed the
two fixed prompts. Every component is checked strictly against its architecture (the official
``from_pretrained`` only logs mismatches) and built on the meta device where possible, so no
random initialisation of 860 M parameters happens before the weights arrive. Offline only.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..dift.featurizer import DIFT_PROMPT, DiftFeaturizer, ddim_alphas_cumprod
from ..errors import ModelFileError
from .checkpoint import load_strict, read_checkpoint, require_file
from .layout import BY_KEY

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The VAE state dict DIFT keeps; decoder.* and post_quant_conv.* of the file are not read into anything.
_VAE_PREFIXES = ("encoder.", "quant_conv.")
# Old diffusers names of the VAE mid-block attention (still in some SD 1.5 downloads).
_OLD_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
# Persistent in old transformers, a non-persistent buffer now; safe to drop.
_OLD_TEXT_BUFFERS = ("text_model.embeddings.position_ids",)
_TEXT_PREFIX = "text_model."


def _hint() -> str:
    entry = BY_KEY["sd15"]
    return f"The '{entry.name}' folder is incomplete; download the missing file from {entry.source}."


def _read_json(path: Path, what: str) -> dict:
    require_file(path, what, _hint())
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{what}: cannot read '{path}': {exc}") from exc


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


def tokenize(tokenizer, text: str, max_length: int) -> torch.Tensor:
    """Token ids (1, max_length): <|startoftext|> ... <|endoftext|>, padded with the pad token."""
    return tokenizer(text, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids


def load_tokenizer(folder: Path):
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
    config = _read_json(folder / "config.json", f"SD 1.5 {sub} config")
    file = weights_file(folder, stems, dtype, f"SD 1.5 {sub}")
    return config, read_checkpoint(file, f"SD 1.5 {sub}"), file


def load_dift(sd15_dir: str | Path, dtype: torch.dtype = torch.float32, *, prompt: str = DIFT_PROMPT) -> DiftFeaturizer:
    """Build the DIFT featurizer from a Stable Diffusion 1.5 diffusers folder (on CPU, in ``dtype``).

    The prompt and the empty prompt are embedded here, in float32, and the text encoder is then
    dropped: DIFT needs nothing else from it.
    """
    if dtype not in _DTYPES:
        raise ModelFileError(f"DIFT: unsupported dtype {dtype}; use float32, float16 or bfloat16.")
    root = Path(sd15_dir)
    if not root.is_dir():
        raise ModelFileError(BY_KEY["sd15"].missing_message([str(root.parent)]))

    scheduler = _read_json(root / "scheduler" / "scheduler_config.json", "SD 1.5 scheduler config")
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

