"""Shared fixtures: repo on sys.path, deterministic torch, tiny model folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Spinning OpenMP workers make torch 20-50x slower on a small, shared machine (seen on 2 cores):
# let idle threads sleep. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A ComfyUI-style ``models`` folder filled by the tiny-model factory (once per session)."""
    from dispose_core.tiny import write_all

    out = tmp_path_factory.mktemp("models")
    write_all(out)
    return out
