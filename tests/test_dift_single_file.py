"""Single-file (LDM layout) SD 1.5 checkpoints for DIFT: same features as the diffusers folder."""
from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from dispose_core.dift.featurizer import extract_features
from dispose_core.errors import CheckpointKeyError, ModelFileError
from dispose_core.loading import sd15
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.sd15 import SD15_CONFIGS, load_dift
from dispose_core.tiny import sd15 as tiny

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _ldm_unet_key(key: str, layers: int, up_has_attention: list[bool]) -> str:
    """Diffusers UNet key -> original SD (LDM) key (the inverse of diffusers' converter, SD 1.x layout)."""
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    resnet = lambda rest: re.sub(r"^(\w+)", lambda m: _RESNET.get(m.group(1), m.group(1)), rest)  # noqa: E731
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        return f"input_blocks.{(layers + 1) * i + j + 1}." + ("0." + resnet(rest) if kind == "resnets" else "1." + rest)
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(layers + 1) * (int(m[1]) + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        return f"output_blocks.{(layers + 1) * i + j}." + ("0." + resnet(rest) if kind == "resnets" else "1." + rest)
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        i = int(m[1])
        return f"output_blocks.{(layers + 1) * i + layers}.{2 if up_has_attention[i] else 1}.conv.{m[2]}"
    raise AssertionError(f"unmapped UNet key {key}")


def _ldm_vae_key(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Diffusers VAE encoder key -> LDM key (attention weights back to 1x1 convs)."""
    key = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", key)
    key = key.replace("down_blocks.", "down.").replace(".resnets.", ".block.").replace("downsamplers.0", "downsample")
    key = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    if "mid_block.attentions.0." in key:
        head, rest = key.split("mid_block.attentions.0.")
        name, param = rest.rsplit(".", 1)
        key = f"{head}mid.attn_1.{_VAE_ATTN[name]}.{param}"
        value = value[:, :, None, None] if param == "weight" and name != "group_norm" else value
    return key, value


def _write_ldm_checkpoint(folder, path) -> None:
    unet_cfg = tiny._UNET
    up_attn = ["CrossAttn" in t for t in unet_cfg["up_block_types"]]
    unet = load_file(str(folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    vae = load_file(str(folder / "vae" / "diffusion_pytorch_model.fp16.safetensors"))
    text = load_file(str(folder / "text_encoder" / "model.fp16.safetensors"))
    state = {"model.diffusion_model." + _ldm_unet_key(k, unet_cfg["layers_per_block"], up_attn): v
             for k, v in unet.items()}
    for k, v in vae.items():
        if k.startswith(("encoder.", "quant_conv.", "post_quant_conv.")):  # decoder left out: never read
            k, v = _ldm_vae_key(k, v)
            state["first_stage_model." + k] = v.contiguous()
    state |= {"cond_stage_model.transformer." + k: v for k, v in text.items()}
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state["model_ema.decay"] = torch.tensor(0.9999)  # extra entries of real files are ignored
    save_file(state, str(path))


@pytest.fixture
def tiny_single_file(tiny_models_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(sd15, "SD15_CONFIGS", {"unet": tiny._UNET, "vae": tiny._VAE, "text_encoder": tiny._TEXT})
    path = tmp_path / "tiny-sd15.safetensors"
    _write_ldm_checkpoint(BY_KEY["sd15"].path_in(tiny_models_dir), path)
    return path


def test_single_file_gives_the_folder_features(tiny_models_dir, tiny_single_file):
    folder = load_dift(BY_KEY["sd15"].path_in(tiny_models_dir))
    single = load_dift(tiny_single_file)
    torch.testing.assert_close(single.prompt_embeds, folder.prompt_embeds, rtol=0, atol=0)
    torch.testing.assert_close(single.null_prompt_embeds, folder.null_prompt_embeds, rtol=0, atol=0)
    image = torch.rand(1, 3, 64, 128) * 2 - 1
    a = extract_features(folder, image, ensemble_size=2, generator=torch.Generator().manual_seed(4))
    b = extract_features(single, image, ensemble_size=2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(b[0], a[0], rtol=0, atol=0)


def test_single_file_errors(tiny_single_file, tmp_path):
    with pytest.raises(ModelFileError, match="only the official prompt"):
        load_dift(tiny_single_file, prompt="photo of a cat")
    state = load_file(str(tiny_single_file))
    del state["model.diffusion_model.out.2.weight"]
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    with pytest.raises(CheckpointKeyError, match="1 missing keys: conv_out.weight"):
        load_dift(broken)


def test_standard_configs_build_the_real_key_sets():
    """The bundled SD 1.5 configs give the manifest's key/parameter counts (meta device / no weights)."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from resources import MANIFESTS

    manifest = json.loads((MANIFESTS / "sd15_unet.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(SD15_CONFIGS["unet"])
        vae = AutoencoderKL.from_config(SD15_CONFIGS["vae"])
        text = CLIPTextModel(CLIPTextConfig(**SD15_CONFIGS["text_encoder"]))
    expected = {k: tuple(v["shape"]) for k, v in manifest["keys"].items()}
    assert {k: tuple(v.shape) for k, v in unet.state_dict().items()} == expected
    summary = manifest["other_components_summary"]
    vae_summary = summary["vae (AutoencoderKL, SD1.5)"]
    assert len(vae.state_dict()) == vae_summary["num_keys"]
    assert sum(p.numel() for p in vae.parameters()) == vae_summary["num_params"]
    assert sum(k.startswith(("encoder.", "quant_conv.")) for k in vae.state_dict()) == vae_summary["encoder_keys"]
    text_summary = summary["text_encoder (CLIPTextModel ViT-L/14 text)"]
    assert len(text.state_dict()) == text_summary["num_keys"]
    assert sum(p.numel() for p in text.parameters()) == text_summary["num_params"]
