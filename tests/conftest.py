"""Shared fixtures: repo on sys.path, deterministic torch, tiny model folder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

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
