"""The tiny CMP file: real container and key names, small, loads through the real loader."""
from __future__ import annotations

import json

import torch

from dispose_core.loading.layout import BY_KEY
from dispose_core.motion.cmp import PREFIX, CMPModel, load_cmp
from dispose_core.motion.dense_flow import compute_dense_flow
from dispose_core.tiny.cmp import TINY_CMP, write_tiny_models
from resources import MANIFESTS
from motion_fixtures import random_poses


def test_tiny_file_layout_and_size(tmp_path):
    (path,) = write_tiny_models(tmp_path)
    assert path == tmp_path / "cmp" / "ckpt_iter_42000.pth.tar" == BY_KEY["cmp"].path_in(tmp_path)
    assert path.stat().st_size < 2_000_000
    obj = torch.load(path, weights_only=True)
    assert obj["step"] == 42000
    manifest = json.loads((MANIFESTS / "cmp.json").read_text())
    assert set(obj["state_dict"]) == set(manifest["keys"])
    assert all(k.startswith(PREFIX) for k in obj["state_dict"])


def test_tiny_loads_and_runs(tiny_models_dir):
    model = load_cmp(BY_KEY["cmp"].path_in(tiny_models_dir))
    assert model.config == TINY_CMP and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    poses = random_poses(3, 64, 48, seed=4)
    dense = compute_dense_flow(model, torch.rand(3, 64, 48), poses, batch_size=4)
    assert dense.fields().shape == (2, 2, 64, 48) and torch.isfinite(dense.fields()).all()
    assert dense.fields().abs().max() > 0


def test_tiny_is_deterministic(tmp_path):
    a = torch.load(write_tiny_models(tmp_path / "a")[0], weights_only=True)["state_dict"]
    b = torch.load(write_tiny_models(tmp_path / "b")[0], weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rng_state = torch.random.get_rng_state()
    write_tiny_models(tmp_path / "c")
    assert torch.equal(rng_state, torch.random.get_rng_state())  # the global RNG is left alone
    assert isinstance(CMPModel(TINY_CMP), CMPModel)
