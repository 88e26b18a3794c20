"""The tiny SGM single file read by ComfyUI's own modules: an independent check of our key maps.

ComfyUI's SGM VAE (``AutoencodingEngine`` + ``temporal_ae.VideoDecoder``, what ``comfy.sd.VAE``
builds for SVD, at the tiny widths) must load our ``first_stage_model.*`` tensors strictly and
decode like our diffusers VAE; ComfyUI's ``clip_vision.convert_to_transformers`` must turn our
OpenCLIP tensors into the same transformers state dict as our converter.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from dispose_core.loading.layout import BY_KEY, SVD_SINGLE_FILE
from dispose_core.loading.mimicmotion import load_mimicmotion_parts
from dispose_core.loading.sgm_keys import CLIP_PREFIX, VAE_PREFIX
from dispose_core.tiny.svd import _VAE

pytestmark = pytest.mark.comfy


def _comfy_vae():
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    levels = len(_VAE["block_out_channels"])
    encoder = {"double_z": True, "z_channels": _VAE["latent_channels"], "resolution": 256, "in_channels": 3,
               "out_ch": 3, "ch": _VAE["block_out_channels"][0], "ch_mult": [1] * levels,
               "num_res_blocks": _VAE["layers_per_block"], "attn_resolutions": [], "dropout": 0.0}
    decoder = dict(encoder, video_kernel_size=[3, 1, 1], alpha=0.0)  # as comfy/sd.py does for SVD
    return AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": encoder},
        decoder_config={"target": "comfy.ldm.modules.temporal_ae.VideoDecoder", "params": decoder})


def test_comfy_reads_our_single_file_like_we_do(tiny_models_dir):
    import comfy.clip_vision

    path = SVD_SINGLE_FILE.path_in(tiny_models_dir)
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    ours = load_mimicmotion_parts(path, BY_KEY["mimicmotion"].path_in(tiny_models_dir))

    vae = _comfy_vae().eval()
    vae.load_state_dict({k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}, strict=True)
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        latent = ours.vae.encode(image).latent_dist.mode()
        theirs_latent = vae.encode(image)
        expected = ours.vae.decode(latent, num_frames=3).sample
        got = vae.decode(latent)  # comfy.sd.VAE passes no frame count: the batch is one video
    assert torch.allclose(theirs_latent, latent, atol=1e-5)
    assert torch.allclose(got, expected, atol=1e-4)

    clip = {k: v for k, v in state.items() if k.startswith(CLIP_PREFIX)}
    converted = comfy.clip_vision.convert_to_transformers(dict(clip), CLIP_PREFIX)
    mine = ours.image_encoder.model.state_dict()
    assert converted.keys() == mine.keys()
    assert all(torch.equal(converted[k], mine[k]) for k in mine)
