"""Discovery and loading of the golden cases computed by the official DisPose code.

Cases live in ``$DISPOSE_GOLDEN_DIR`` (default ``../shared/reference/golden`` beside the repo).
Each case is ``<name>.json`` (the sidecar: sizes, configs, tolerances) plus its tensors
(``<name>.safetensors`` for G* cases, ``<name>.io.safetensors`` for M* cases). Tests take every
size and setting from the sidecar, so any further case in the same format runs too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resources import golden_dir


@dataclass
class GoldenCase:
    name: str
    sidecar: dict
    tensors: dict[str, torch.Tensor]

    def weights(self, file_name: str) -> dict[str, torch.Tensor]:
        """A weight file named by the sidecar (M* cases), loaded from the golden dir."""
        return load_file(str(golden_dir() / file_name))


def case_names(prefix: str) -> list[str]:
    """Names of all cases whose sidecar file starts with ``prefix`` (e.g. 'G1_', 'M2')."""
    d = golden_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob(f"{prefix}*.json"))


def load_case(name: str) -> GoldenCase:
    d = golden_dir()
    sidecar = json.loads((d / f"{name}.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for candidate in (d / f"{name}.safetensors", d / f"{name}.io.safetensors"):
        if candidate.is_file():
            tensors = load_file(str(candidate))
    return GoldenCase(name, sidecar, tensors)


def golden_params(prefix: str):
    """``pytest.mark.parametrize`` arguments over every case with ``prefix``.

    Ids contain 'golden' and every parameter carries the ``golden`` marker (``pytest -m golden``).
    With no such case, one parameter is produced instead of an empty parametrization: conftest
    skips it when the golden directory is absent (fails it on CI), and :func:`require` fails it
    when the directory is there but lacks the case, so missing data never passes silently.
    """
    names = case_names(prefix) or [None]
    params = [
        pytest.param(n, id=f"golden-{n or prefix + '-missing'}", marks=pytest.mark.golden) for n in names
    ]
    return pytest.mark.parametrize("golden_name", params)


def first_case(prefix: str) -> GoldenCase:
    """The first case with ``prefix``, for tests that borrow its weights or inputs (mark them golden)."""
    names = case_names(prefix)
    return require(names[0] if names else None)


def rel_l2(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative L2 error ||got - expected|| / ||expected|| (the M* cases' metric)."""
    got = got.detach().double().cpu()
    expected = expected.detach().double().cpu()
    return float((got - expected).norm() / expected.norm().clamp_min(1e-30))


def require(name: str | None) -> GoldenCase:
    """Load the case, failing (not skipping) when the golden directory is missing."""
    if name is None:
        pytest.fail(f"golden directory {golden_dir()} has no such case; set DISPOSE_GOLDEN_DIR")
    return load_case(name)
