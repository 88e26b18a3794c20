"""Shared fixtures and the resource gates: repo on sys.path, deterministic torch, tiny model folder,
and one skip (or CI failure) per missing resource instead of one per test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Spinning OpenMP workers make torch 20-50x slower on a small, shared machine (seen on 2 cores):
# let idle threads sleep. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent))
sys.path.insert(0, str(TESTS))

import resources  # noqa: E402  (after the repo is on sys.path; puts ComfyUI first when it is there)

torch.set_num_threads(2)
GATED = ("golden", "comfy", "host", "browser")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for resource in GATED:
        if item.get_closest_marker(resource) is None:
            continue
        reason = resources.missing(resource)
        if reason is None:
            continue
        if resource == "golden" and os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the golden parity tests must run)", pytrace=False)
        pytest.skip(f"{resource} tests: {reason}")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A ComfyUI-style ``models`` folder filled by the tiny-model factory (once per session)."""
    from dispose_core.tiny import write_all

    out = tmp_path_factory.mktemp("models")
    write_all(out)
    return out
