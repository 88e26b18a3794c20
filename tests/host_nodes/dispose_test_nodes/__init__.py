"""Test-only ComfyUI nodes for the host tests (linked into the test server's custom_nodes).

* ``DisPoseTestTinyCoreSVD``: ComfyUI's own CLIP_VISION and VAE objects (``comfy.clip_vision.ClipVisionModel``,
  ``comfy.sd.VAE``, what Image Only Checkpoint Loader returns) built from the tiny single-file SVD.
  The real loader cannot read it: ComfyUI picks the CLIP config by layer count and builds the SVD
  VAE at the published widths. So the tiny widths are given explicitly (the CLIP config as a JSON
  file, the VAE widths patched into ``comfy.sd.VAE``'s SVD branch while it builds); keys and
  weights come from the file through ComfyUI's own converters.
* ``DisPoseTestSaveTensor``: writes an IMAGE batch unquantised (safetensors) to the output folder,
  for parity checks a video file cannot give.
"""
from __future__ import annotations

import json
import os
import tempfile
from unittest import mock

import torch

CLIP_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
VAE_PREFIX = "first_stage_model."
CONFIGS = "dispose.svd_configs"  # the tiny factory's configs in the safetensors metadata


def _core_clip_vision(state: dict, config: dict):
    import comfy.clip_vision

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    try:
        clip = comfy.clip_vision.ClipVisionModel(f.name)
    finally:
        os.unlink(f.name)
    sd = comfy.clip_vision.convert_to_transformers({k: v for k, v in state.items() if k.startswith(CLIP_PREFIX)},
                                                   CLIP_PREFIX)
    missing, unexpected = clip.load_sd(sd)
    assert not missing and not unexpected, (missing, unexpected)
    return clip


def _core_vae(state: dict, config: dict):
    import comfy.sd

    widths = config["block_out_channels"]
    real = comfy.sd.AutoencodingEngine

    def tiny(**kwargs):
        for part in ("encoder_config", "decoder_config"):
            kwargs[part]["params"].update(ch=widths[0], ch_mult=[w // widths[0] for w in widths],
                                          num_res_blocks=config["layers_per_block"])
        return real(**kwargs)

    sd = {k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    with mock.patch.object(comfy.sd, "AutoencodingEngine", tiny):
        return comfy.sd.VAE(sd=sd)


class TinyCoreSVD:
    CATEGORY = "DisPose/test"
    RETURN_TYPES = ("CLIP_VISION", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": "svd_xt_1_1.safetensors"})}}

    def load(self, ckpt_name: str):
        import folder_paths
        from safetensors import safe_open

        with safe_open(folder_paths.get_full_path("checkpoints", ckpt_name), framework="pt") as f:
            configs = json.loads(f.metadata()[CONFIGS])
            state = {k: f.get_tensor(k).float() for k in f.keys() if k.startswith((CLIP_PREFIX, VAE_PREFIX))}
        return _core_clip_vision(state, configs["image_encoder"]), _core_vae(state, configs["vae"])


class SaveTensor:
    CATEGORY = "DisPose/test"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": "frames"})}}

    def save(self, images: torch.Tensor, name: str):
        import folder_paths
        from safetensors.torch import save_file

        save_file({"images": images.float().contiguous().cpu()},
                  os.path.join(folder_paths.get_output_directory(), f"{name}.safetensors"))
        return {}


NODE_CLASS_MAPPINGS = {"DisPoseTestTinyCoreSVD": TinyCoreSVD, "DisPoseTestSaveTensor": SaveTensor}
