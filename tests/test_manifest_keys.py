"""Full-size architectures (built on the meta device) against the manifests of the real checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resources import MANIFESTS
from dispose_core.errors import CheckpointKeyError
from dispose_core.loading.checkpoint import check_keys
from dispose_core.loading.dispose import overlay_on_unet
from dispose_core.loading.mimicmotion import build_unet_and_pose_net
from dispose_core.loading.svd import build_image_encoder, build_vae
from dispose_core.models.controlnet import COPIED_FROM_UNET, ControlNetDims, HybridControlNet
from dispose_core.models.posenet import PoseNet
from dispose_core.models.unet import MimicMotionUNet


# The published SVD xt 1.1 configs (vae/config.json, image_encoder/config.json).
SVD_VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4, "sample_size": 768,
    "scaling_factor": 0.18215, "force_upcast": True,
}
SVD_IMAGE_ENCODER_CONFIG = {
    "hidden_size": 1280, "intermediate_size": 5120, "projection_dim": 1024, "num_hidden_layers": 32,
    "num_attention_heads": 16, "num_channels": 3, "image_size": 224, "patch_size": 14, "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}


_COPIED = "copied from the MimicMotion UNet by from_unet (same key in unet)"


def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.is_file():
        pytest.fail(f"manifest {path} missing; set DISPOSE_GOLDEN_DIR to the reference golden folder")
    return json.loads(path.read_text())


def _shapes(keys: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    n = len(prefix)
    return {k[n:]: tuple(v["shape"]) for k, v in keys.items() if k.startswith(prefix)}


def _meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def _ours(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def real_unet_config() -> dict:
    return _manifest("dispose_controlnet.json")["unet_config_used"]


@pytest.fixture(scope="module")
def meta_unet(real_unet_config) -> MimicMotionUNet:
    with torch.device("meta"):
        return MimicMotionUNet.from_config(real_unet_config)


def test_unet_and_pose_net_match_mimicmotion_manifest(meta_unet):
    manifest = _manifest("mimicmotion.json")
    required = manifest["required_keys"]
    with torch.device("meta"):
        pose_net = PoseNet(meta_unet.config.block_out_channels[0])
    assert _ours(meta_unet) == _shapes(required, "unet.")
    assert _ours(pose_net) == _shapes(required, "pose_net.")
    assert len(required) == manifest["required_keys_count"]


def test_svd_vae_and_image_encoder_match_optional_keys():
    optional = _manifest("mimicmotion.json")["optional_keys"]
    vae = build_vae(SVD_VAE_CONFIG, _meta_state(_shapes(optional, "vae.")), file="manifest")
    enc = build_image_encoder(SVD_IMAGE_ENCODER_CONFIG, _meta_state(_shapes(optional, "image_encoder.")),
                              file="manifest")
    assert len(_ours(vae)) + len(_ours(enc)) == len(optional)


def test_mimicmotion_loader_accepts_manifest_keys(real_unet_config):
    required = _shapes(_manifest("mimicmotion.json")["required_keys"])
    unet, pose_net = build_unet_and_pose_net(real_unet_config, _meta_state(required), file=Path("MimicMotion_1-1.pth"))
    assert unet.residual_multiplicities() == [4, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1]
    dropped = dict(_meta_state(required))
    dropped.pop("unet.conv_out.weight")
    with pytest.raises(CheckpointKeyError, match=r"1 missing keys: conv_out.weight"):
        build_unet_and_pose_net(real_unet_config, dropped, file=Path("MimicMotion_1-1.pth"))


def test_controlnet_matches_dispose_manifest(meta_unet):
    manifest = _manifest("dispose_controlnet.json")
    extras = manifest["controlnet_constructor_extras"]
    pa = extras["point_adapter"]
    dims = ControlNetDims(tuple(extras["conditioning_embedding_out_channels"]), pa["embedding_channels"], pa["mid_dim"])
    with torch.device("meta"):
        net = HybridControlNet(meta_unet.config, dims)
    assert dims == ControlNetDims()  # our defaults are the official ones
    assert net.level_rates() == tuple(pa["downsample_rate"])
    check_keys(_meta_state(_shapes(manifest["keys"])), _ours(net), file="DisPose.pth", what="manifest")
    fallback = [k for k in _ours(net) if k.split(".")[0] in COPIED_FROM_UNET]
    copied = manifest["fallback_on_missing"][_COPIED]
    assert len(fallback) == copied["count"]
    assert all(k.startswith(tuple(copied["prefixes"])) for k in fallback)
    assert not any(k.startswith(tuple(manifest["must_be_in_file_for_a_trained_model"])) for k in fallback)


def test_dispose_loader_fallback_and_report_on_manifest_keys(meta_unet):
    manifest = _manifest("dispose_controlnet.json")
    full = _meta_state(_shapes(manifest["keys"]))
    net, report = overlay_on_unet(full, meta_unet, file=Path("DisPose.pth"))
    assert (report.from_file, report.from_unet) == (manifest["num_keys"], 0)
    must = tuple(manifest["must_be_in_file_for_a_trained_model"])
    minimal = {k: v for k, v in full.items() if k.startswith(must)}
    _, report = overlay_on_unet(minimal, meta_unet, file=Path("DisPose.pth"))
    copied = manifest["fallback_on_missing"][_COPIED]["count"]
    assert (report.from_file, report.from_unet) == (len(minimal), copied)
    no_time_ids = {k: v for k, v in full.items() if not k.startswith("add_embedding.")}
    with pytest.raises(CheckpointKeyError, match=r"4 missing keys: add_embedding"):
        overlay_on_unet(no_time_ids, meta_unet, file=Path("DisPose.pth"))
