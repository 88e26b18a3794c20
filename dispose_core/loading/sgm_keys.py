"""Key maps between Stability's SGM single-file layout and the diffusers/transformers modules we build.

Written from reading ComfyUI's SGM modules (``comfy/ldm/modules/temporal_ae.py``, the
``Encoder``/``Decoder`` of ``diffusionmodules/model.py``, ``clip_vision.convert_to_transformers``)
and diffusers' ``scripts/convert_svd_to_diffusers.py``; the code is our own. Each map is computed
from the *target* module's key names, so one table serves both directions (the loader reads SGM
files, the tiny-model factory writes them) and a name the rules do not cover is an error, never a
silent skip.

Temporal VAE (``first_stage_model.*``):
* SGM ``down.{i}.block.{j}`` / ``up.{i}.block.{j}`` = diffusers ``down_blocks.{i}.resnets.{j}`` /
  ``up_blocks.{n-1-i}.resnets.{j}`` (SGM counts the decoder's levels from the bottom);
* SGM ``mid.block_{1,2}`` / ``mid.attn_1`` = ``mid_block.resnets.{0,1}`` / ``mid_block.attentions.0``;
* the decoder's video resnets keep the spatial part under the SGM block name and the temporal part
  under ``time_stack.{in_layers.0,in_layers.2,out_layers.0,out_layers.3}`` (diffusers
  ``temporal_res_block.{norm1,conv1,norm2,conv2}``), their blend under ``mix_factor``;
* the attention projections are 1x1 convolutions in SGM and linear layers in diffusers (reshaped);
* SGM's ``AutoencodingEngine`` has no ``quant_conv``; diffusers' temporal VAE has one, so it is set
  to the identity, which computes what the SGM model computes.

OpenCLIP ViT (``conditioner.embedders.0.open_clip.model.visual.*``) -> CLIPVisionModelWithProjection:
* ``transformer.resblocks.{i}.attn.in_proj_{weight,bias}`` is q, k and v stacked along dim 0;
* ``proj`` is (width, projection_dim), applied as ``x @ proj``: ``visual_projection.weight`` is its
  transpose; ``ln_pre`` / ``ln_post`` are ``pre_layrnorm`` (transformers' spelling) / ``post_layernorm``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
IDENTITY_KEYS = ("quant_conv.weight", "quant_conv.bias")  # diffusers-only, the identity (see above)

_RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
                 "conv_shortcut": "nin_shortcut"}
_TEMPORAL_PARTS = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}
_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_CLIP_LAYER_PARTS = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                     "self_attn.out_proj": "attn.out_proj"}
_CLIP_FIXED = {
    "vision_model.embeddings.class_embedding": "class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight", "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight", "vision_model.post_layernorm.bias": "ln_post.bias",
    "visual_projection.weight": "proj",
}
_QKV = ("q_proj", "k_proj", "v_proj")


class UnmappedKeyError(KeyError):
    """A target key no rule covers (the module is not the architecture these maps describe)."""


def _resnet(rest: str, temporal_prefix: str | None = None) -> str:
    """``norm1.weight`` style names of a (spatial or, with ``temporal_prefix``, temporal) resnet."""
    part, _, param = rest.rpartition(".")
    table = _TEMPORAL_PARTS if temporal_prefix is not None else _RESNET_PARTS
    if part not in table:
        raise UnmappedKeyError(rest)
    return f"{temporal_prefix or ''}{table[part]}.{param}"


def _attention(rest: str) -> str:
    part, _, param = rest.rpartition(".")
    if part not in _ATTENTION_PARTS:
        raise UnmappedKeyError(rest)
    return f"{_ATTENTION_PARTS[part]}.{param}"


def _video_resnet(block: str, rest: str) -> str:
    """Decoder resnets: ``spatial_res_block.*`` / ``temporal_res_block.*`` / ``time_mixer.mix_factor``."""
    if rest == "time_mixer.mix_factor":
        return f"{block}.mix_factor"
    kind, _, inner = rest.partition(".")
    if kind == "spatial_res_block":
        return f"{block}.{_resnet(inner)}"
    if kind == "temporal_res_block":
        return f"{block}.{_resnet(inner, 'time_stack.')}"
    raise UnmappedKeyError(rest)


def _vae_key(key: str, num_up: int) -> str:
    """The SGM name (without ``first_stage_model.``) of one diffusers temporal-VAE key."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        raise UnmappedKeyError(key)
    resnet = _video_resnet if side == "decoder" else (lambda block, r: f"{block}.{_resnet(r)}")
    fixed = {"conv_in": "conv_in", "conv_out": "conv_out", "conv_norm_out": "norm_out",
             "time_conv_out": "conv_out.time_mix_conv"}
    head, _, param = rest.rpartition(".")
    if head in fixed:
        return f"{side}.{fixed[head]}.{param}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", rest):
        return f"{side}.{resnet(f'mid.block_{int(m[1]) + 1}', m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest):
        return f"{side}.mid.attn_1.{_attention(m[1])}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        return f"encoder.{resnet(f'down.{m[1]}.block.{m[2]}', m[3])}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", rest):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        return f"decoder.{resnet(f'up.{num_up - 1 - int(m[1])}.block.{m[2]}', m[3])}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", rest):
        return f"decoder.up.{num_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
    raise UnmappedKeyError(key)


def vae_key_map(diffusers_keys: Iterable[str]) -> dict[str, str]:
    """diffusers temporal-VAE key -> full SGM key, for every key but ``IDENTITY_KEYS``."""
    keys = [k for k in diffusers_keys if k not in IDENTITY_KEYS]
    num_up = len({m[1] for k in keys if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k))})
    return {k: VAE_PREFIX + _vae_key(k, num_up) for k in keys}


def clip_key_map(transformers_keys: Iterable[str]) -> dict[str, str]:
    """transformers CLIP-vision key -> full OpenCLIP key; q/k/v all map to the fused ``in_proj``."""
    mapping = {}
    for key in transformers_keys:
        if key in _CLIP_FIXED:
            mapping[key] = CLIP_PREFIX + _CLIP_FIXED[key]
            continue
        m = re.fullmatch(r"vision_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if m is None:
            raise UnmappedKeyError(key)
        layer, part, param = m.groups()
        if part.startswith("self_attn.") and part.removeprefix("self_attn.") in _QKV:
            mapping[key] = f"{CLIP_PREFIX}transformer.resblocks.{layer}.attn.in_proj_{param}"
        elif part in _CLIP_LAYER_PARTS:
            mapping[key] = f"{CLIP_PREFIX}transformer.resblocks.{layer}.{_CLIP_LAYER_PARTS[part]}.{param}"
        else:
            raise UnmappedKeyError(key)
    return mapping


def vae_from_sgm(sgm: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The diffusers temporal-VAE state dict (shapes ``expected``) from SGM tensors (full keys).

    Raises KeyError for a missing SGM key; reshapes the 1x1-conv attention projections to linear.
    """
    out = {k: sgm[src].reshape(expected[k]) for k, src in vae_key_map(expected).items()}
    for key in IDENTITY_KEYS:
        if key in expected:
            shape = expected[key]
            out[key] = torch.eye(shape[0]).reshape(shape) if key.endswith("weight") else torch.zeros(shape)
    return out


def vae_to_sgm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SGM tensors from a diffusers temporal-VAE state dict (its ``quant_conv`` must be the identity)."""
    out = {}
    for key, src in vae_key_map(state).items():
        t = state[key]
        out[src] = t[..., None, None] if ".mid_block.attentions." in key and t.ndim == 2 else t
    return out


def clip_from_open_clip(sgm: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The transformers CLIP-vision state dict from OpenCLIP visual tensors (full keys)."""
    out = {}
    for key, src in clip_key_map(expected).items():
        t = sgm[src]
        if key == "visual_projection.weight":
            t = t.t()
        elif (name := key.split(".")[-2]) in _QKV:
            t = t.chunk(3, dim=0)[_QKV.index(name)]
        out[key] = t.contiguous()
    return out


def clip_to_open_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP visual tensors from a transformers CLIP-vision state dict (q, k, v fused in order)."""
    out = {}
    for key, src in clip_key_map(state).items():
        t = state[key]
        if key == "visual_projection.weight":
            out[src] = t.t().contiguous()
        elif (name := key.split(".")[-2]) in _QKV:
            if name == "q_proj":
                out[src] = torch.cat([state[key.replace(".q_proj.", f".{p}.")] for p in _QKV])
        else:
            out[src] = t
    return out
