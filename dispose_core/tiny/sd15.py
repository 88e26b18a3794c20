"""Tiny Stable Diffusion 1.5 diffusers folder: ``diffusers/stable-diffusion-v1-5/``.

The real layout and file names (fp16 variant weights, config.json per component, tokenizer
vocab.json + merges.txt, scheduler config, model_index.json) and the real key names, with tiny
widths (the configs of golden case M4: >= 2 attention heads, GroupNorm groups that divide every
width). The tokenizer is a valid CLIP byte-level BPE with the real ids of the DIFT prompt's words
("photo of a human" -> 49406 1125 539 320 2751 49407), so token ids match the real tokenizer's.
"""
from __future__ import annotations

from pathlib import Path

from ..loading.layout import BY_KEY
from .svd import save_fp16, seeded, write_json

_SEED = 1500
_UNET = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [8, 16, 32, 32], "layers_per_block": 2, "norm_num_groups": 4,
    "cross_attention_dim": 4, "attention_head_dim": 2,
}
# Channels of the tiny DIFT feature (up block 1); 1280 for the real SD 1.5.
TINY_DIFT_CHANNELS = _UNET["block_out_channels"][-2]
_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 16, 16, 16], "sample_size": 64, "scaling_factor": 0.18215,
}
_TEXT = {
    "vocab_size": 49408, "hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
    "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 4,
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
}
_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "clip_sample": False,
}
# Real CLIP ids of the DIFT prompt's words (end-of-word forms).
_WORD_IDS = {"photo": 1125, "of": 539, "a": 320, "human": 2751}
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
_METADATA = {"format": "pt"}  # as in the real diffusers fp16 files


def _byte_alphabet() -> list[str]:
    """CLIP/GPT-2 byte-level alphabet in id order: printable bytes first, then the rest shifted to 256+."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


def tiny_clip_bpe() -> tuple[dict[str, int], list[str]]:
    """A small but valid CLIP BPE: every byte (ids 0-511 as in CLIP) plus merges for the prompt's words."""
    chars = _byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    merges: list[str] = []
    next_id = 512
    for word, word_id in _WORD_IDS.items():
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            merges.append(f"{parts[0]} {parts[1]}")
            if merged not in vocab:
                vocab[merged] = word_id if len(parts) == 2 else next_id
                next_id += len(parts) > 2
            parts = [merged, *parts[2:]]
    vocab |= {_BOS: 49406, _EOS: 49407}
    return vocab, merges


def _write_tokenizer(folder: Path) -> list[Path]:
    vocab, merges = tiny_clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _EOS, "pad_token": _EOS}
    return [
        write_json(folder / "vocab.json", vocab, sort_keys=True),
        folder / "merges.txt",
        write_json(folder / "tokenizer_config.json", {**special, "model_max_length": 77, "do_lower_case": True,
                                                       "tokenizer_class": "CLIPTokenizer"}, sort_keys=True),
        write_json(folder / "special_tokens_map.json", special, sort_keys=True),
    ]


def write_tiny_models(models_dir: Path) -> list[Path]:
    """Write the tiny SD 1.5 folder under ``models_dir`` (ComfyUI ``models`` layout)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = BY_KEY["sd15"].path_in(models_dir)
    unet, vae, text = seeded(_SEED, lambda: (
        UNet2DConditionModel.from_config(_UNET),
        AutoencoderKL.from_config(_VAE),
        CLIPTextModel(CLIPTextConfig(**_TEXT)),
    ))
    text_state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in text.state_dict().items()}
    unet.save_config(str(root / "unet"))
    vae.save_config(str(root / "vae"))
    written = [
        save_fp16(unet.state_dict(), root / "unet" / "diffusion_pytorch_model.fp16.safetensors", metadata=_METADATA),
        save_fp16(vae.state_dict(), root / "vae" / "diffusion_pytorch_model.fp16.safetensors", metadata=_METADATA),
        save_fp16(text_state, root / "text_encoder" / "model.fp16.safetensors", metadata=_METADATA),
        root / "unet" / "config.json", root / "vae" / "config.json",
        write_json(root / "text_encoder" / "config.json", {**_TEXT, "architectures": ["CLIPTextModel"],
                                                           "model_type": "clip_text_model", "torch_dtype": "float32"},
                   sort_keys=True),
        write_json(root / "scheduler" / "scheduler_config.json", _SCHEDULER, sort_keys=True),
        *_write_tokenizer(root / "tokenizer"),
        write_json(root / "model_index.json", {
            "_class_name": "StableDiffusionPipeline",
            "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None], "feature_extractor": [None, None],
            "requires_safety_checker": False,
        }, sort_keys=True),
    ]
    return written
