"""SD 1.5 loading for DIFT: tiny folder end to end, strictness, variants, full-size key set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from golden import first_case
from resources import MANIFESTS
from safetensors.torch import load_file, save_file

from dispose_core.dift.featurizer import DiftFeaturizer, extract_features
from dispose_core.errors import CheckpointKeyError, ModelFileError
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.sd15 import build_unet, load_dift, load_tokenizer, tokenize, weights_file
from dispose_core.tiny.sd15 import TINY_DIFT_CHANNELS

MANIFEST = MANIFESTS / "sd15_unet.json"
UNET_FILE = Path("unet") / "diffusion_pytorch_model.fp16.safetensors"


@pytest.fixture(scope="module")
def sd15_dir(tiny_models_dir) -> Path:
    return BY_KEY["sd15"].path_in(tiny_models_dir)


@pytest.fixture
def sd15_copy(sd15_dir, tmp_path) -> Path:
    """A private copy of the tiny folder that a test may damage."""
    return Path(shutil.copytree(sd15_dir, tmp_path / sd15_dir.name))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tiny_folder_loads_and_extracts(sd15_dir, dtype):
    featurizer = load_dift(sd15_dir, dtype)
    assert isinstance(featurizer, DiftFeaturizer) and featurizer.dtype == dtype
    assert featurizer.vae.decoder is None and not any(k.startswith("decoder.") for k in featurizer.state_dict())
    assert not hasattr(featurizer, "text_encoder")
    image = torch.rand(1, 3, 128, 64) * 2 - 1
    (feat,) = extract_features(featurizer, image, ensemble_size=2, generator=torch.Generator().manual_seed(1))
    assert feat.shape == (1, TINY_DIFT_CHANNELS, 8, 4) and feat.dtype == torch.float32
    assert torch.isfinite(feat).all() and feat.abs().sum() > 0
    # The prompt and the empty prompt give different embeddings.
    assert not torch.allclose(featurizer.prompt_embeds, featurizer.null_prompt_embeds)


@pytest.mark.golden
def test_tiny_tokenizer_gives_the_official_token_ids(sd15_dir):
    case = first_case("M4")
    tokenizer = load_tokenizer(sd15_dir / "tokenizer")
    ids = case.tensors["in.prompt_input_ids"]
    assert torch.equal(tokenize(tokenizer, case.sidecar["config"]["prompt"], ids.shape[1]), ids)
    assert torch.equal(tokenize(tokenizer, "", ids.shape[1]), case.tensors["in.null_prompt_input_ids"])


def test_missing_folder_and_files_are_named(sd15_copy, tmp_path):
    with pytest.raises(ModelFileError, match="stable-diffusion-v1-5' not found"):
        load_dift(tmp_path / "nowhere" / "stable-diffusion-v1-5")
    (sd15_copy / "tokenizer" / "merges.txt").unlink()
    with pytest.raises(ModelFileError, match="merges.txt"):
        load_dift(sd15_copy)
    (sd15_copy / UNET_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"unet.*diffusion_pytorch_model\.fp16\.safetensors"):
        weights_file(sd15_copy / "unet", ("diffusion_pytorch_model",), torch.float16, "SD 1.5 unet")
    (sd15_copy / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(ModelFileError, match="scheduler_config.json"):
        load_dift(sd15_copy)


def test_wrong_unet_keys_are_listed_with_counts(sd15_copy):
    state = load_file(str(sd15_copy / UNET_FILE))
    dropped = "conv_out.weight"
    del state[dropped]
    state["extra.weight"] = torch.zeros(1, dtype=torch.float16)
    state["conv_in.bias"] = torch.zeros(3, dtype=torch.float16)
    save_file(state, str(sd15_copy / UNET_FILE))
    with pytest.raises(CheckpointKeyError) as err:
        load_dift(sd15_copy)
    msg = str(err.value)
    assert "1 missing keys: " + dropped in msg and "1 unexpected keys: extra.weight" in msg
    assert "1 tensors with the wrong shape: conv_in.bias" in msg and str(UNET_FILE.name) in msg


def test_variants_and_legacy_key_names(sd15_copy):
    vae_dir, text_dir = sd15_copy / "vae", sd15_copy / "text_encoder"
    # fp32 prefers the full-precision file, fp16/bf16 the fp16 variant.
    plain = sd15_copy / "unet" / "diffusion_pytorch_model.safetensors"
    shutil.copy(sd15_copy / UNET_FILE, plain)
    assert weights_file(plain.parent, ("diffusion_pytorch_model",), torch.float32, "unet") == plain
    assert weights_file(plain.parent, ("diffusion_pytorch_model",), torch.float16, "unet") == sd15_copy / UNET_FILE
    # Old VAE attention names and the old persistent CLIP position_ids still load.
    vae_file = vae_dir / "diffusion_pytorch_model.fp16.safetensors"
    old = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for k, v in load_file(str(vae_file)).items():
        for new, legacy in old.items():
            k = k.replace(new, legacy) if "mid_block.attentions" in k else k
        state[k] = v
    assert any(".query." in k for k in state)
    vae_file.unlink()
    save_file(state, str(vae_dir / "diffusion_pytorch_model.safetensors"))
    text = load_file(str(text_dir / "model.fp16.safetensors"))
    text["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    save_file(text, str(text_dir / "model.fp16.safetensors"))
    reference = load_dift(sd15_copy)
    assert reference.vae.encoder.mid_block.attentions[0].to_q.weight.abs().sum() > 0


def test_full_size_unet_key_set_matches_manifest():
    """The real SD 1.5 UNet config builds exactly the manifest's 686 keys and shapes (meta device)."""
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        state = {k: torch.empty(v["shape"]) for k, v in manifest["keys"].items()}
    assert len(state) == manifest["num_keys"]
    unet = build_unet(manifest["unet_config_used"], state, file="manifest")
    assert sum(p.numel() for p in unet.parameters()) == manifest["num_params"]
    del state[next(iter(state))]
    with pytest.raises(CheckpointKeyError, match="1 missing keys"):
        build_unet(manifest["unet_config_used"], state, file="manifest")
