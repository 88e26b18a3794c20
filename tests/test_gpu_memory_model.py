"""The README's VRAM estimate per phase and benchmark mode (bench/gpu/memory_model.py at the real widths):
up to date with the code, and its weights and working memory equal to what the checkpoint manifests and
ComfyUI's / the measured formulas give, counted independently here."""
from __future__ import annotations

import json
import math

import pytest

from bench.gpu.memory_model import GIB, mode_estimates
from bench.gpu.modes import MODES, Mode
from bench.gpu.report import VRAM_BEGIN, VRAM_END, vram_estimate_section
from resources import REPO

MANIFESTS = REPO / "tests" / "reference" / "manifests"
BY_NAME = {mode.name: mode for mode in MODES}
CLIP_POSITION_IDS = (224 // 14) ** 2 + 1  # int64 buffer of the ViT-H/14 image encoder, on the GPU with it


def manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def numel(keys: dict, prefix: str = "") -> int:
    return sum(math.prod(entry["shape"]) for key, entry in keys.items() if key.startswith(prefix))


def fp8_bytes(keys: dict, prefix: str) -> int:
    """Linear/Conv weights (2+ dims) as 1-byte fp8 plus a float32 scale each; everything else 2 bytes."""
    total = 0
    for key, entry in keys.items():
        if key.startswith(prefix):
            matrix = key.endswith(".weight") and len(entry["shape"]) >= 2
            total += math.prod(entry["shape"]) * (1 if matrix else 2) + (4 if matrix else 0)
    return total


@pytest.fixture(scope="module")
def at_576():
    return {name: mode_estimates(BY_NAME[name], height=1024, width=576, tile=16, decode_chunk=8)
            for name in ("dispose-bf16", "mimicmotion-bf16", "dispose-fp8")}


def test_readme_vram_table_is_generated_from_the_memory_model():
    readme = (REPO / "README.md").read_text()
    block = readme.split(VRAM_BEGIN, 1)[1].split(VRAM_END, 1)[0].strip()
    assert block == vram_estimate_section(), "README's VRAM estimate is stale: run python3 bench/gpu/report.py"


def test_weights_per_phase_are_the_checkpoints_parameters_at_two_bytes(at_576):
    mimicmotion, controlnet = manifest("mimicmotion"), manifest("dispose_controlnet")
    svd = mimicmotion["optional_keys"]  # vae.* and image_encoder.* of SVD xt 1.1
    dispose = at_576["dispose-bf16"]
    assert dispose["sample"].weights == 2 * (mimicmotion["required_num_params"] + controlnet["num_params"])
    assert at_576["mimicmotion-bf16"]["sample"].weights == 2 * mimicmotion["required_num_params"]
    assert dispose["encode"].weights == 2 * numel(svd) + 8 * CLIP_POSITION_IDS
    assert dispose["decode"].weights == 2 * numel(svd, "vae.")


def test_fp8_stores_unet_and_controlnet_matrices_in_one_byte(at_576):
    mimicmotion, controlnet = manifest("mimicmotion"), manifest("dispose_controlnet")
    keys = mimicmotion["required_keys"]
    expected = fp8_bytes(keys, "unet.") + 2 * numel(keys, "pose_net.") + fp8_bytes(controlnet["keys"], "")
    assert at_576["dispose-fp8"]["sample"].weights == expected


def test_working_memory_is_comfyuis_vae_estimate_and_the_measured_tile_line(at_576):
    dispose = at_576["dispose-bf16"]
    assert dispose["encode"].working == 1024 * 576 * 1767 * 2  # ComfyUI: 1767 B per pixel per dtype byte
    assert dispose["decode"].working == 8 * (1024 // 8) * (576 // 8) * 2178 * 64 * 2  # per latent pixel, 8 frames
    # 56.4 MiB + 3847 B per latent pixel per dtype byte of the CFG batch (2 x 16 frames)
    assert dispose["sample"].working == int(56.4 * 2**20) + 3847 * 2 * 16 * 128 * 72 * 2


def test_readme_row_of_the_bf16_dispose_mode(at_576):
    mimicmotion, controlnet = manifest("mimicmotion"), manifest("dispose_controlnet")
    svd = mimicmotion["optional_keys"]
    latent_pixels = (1024 // 8) * (576 // 8)
    sample = (2 * (mimicmotion["required_num_params"] + controlnet["num_params"]),
              int(56.4 * 2**20) + 3847 * 2 * 2 * 16 * latent_pixels)
    encode = 2 * numel(svd) + 8 * CLIP_POSITION_IDS, 1024 * 576 * 1767 * 2
    decode = 2 * numel(svd, "vae."), 8 * latent_pixels * 2178 * 64 * 2

    def cell(weights: int, working: int) -> str:
        return f"{weights / GIB:.2f} + {working / GIB:.2f} = {(weights + working) / GIB:.2f}"

    row = f"| dispose-bf16 | 16, 1024x576, 16 | {cell(*encode)} | {cell(*sample)} | {cell(*decode)} |"
    assert row in (REPO / "README.md").read_text().splitlines()


def test_a_budget_that_binds_keeps_only_what_fits_beside_the_working_memory(at_576):
    tight = mode_estimates(Mode("budget-6g", usable_gib=6.0),
                           height=1024, width=576, tile=16, decode_chunk=8)
    full = at_576["dispose-bf16"]
    assert tight["sample"].weights == 6 * GIB - full["sample"].working < full["sample"].weights
    assert tight["encode"] == full["encode"] and tight["decode"] == full["decode"]  # loaded whole


def test_the_low_vram_mode_loads_the_sample_weights_partially(at_576):
    """Its budget is one that binds at 1024x576 (an 8 GiB one would hold all 6.3 GiB)."""
    low = mode_estimates(BY_NAME["dispose-bf16-lowvram-4g"], height=1024, width=576, tile=16, decode_chunk=8)
    full = at_576["dispose-bf16"]["sample"]
    assert low["sample"].weights == 4 * GIB - full.working < full.weights
