"""Read checkpoints (safetensors or torch pickles) and load them strictly.

The official code loads every checkpoint with ``strict=False``, which silently keeps random
weights when a key is missing. Here a mismatch is an error that lists what is wrong.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..errors import CheckpointKeyError, ModelFileError

_SHOW = 8  # how many names of each kind an error message lists
DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what the loaders build models in


def check_dtype(dtype: torch.dtype, what: str) -> None:
    if dtype not in DTYPES:
        raise ModelFileError(f"{what}: unsupported dtype {dtype}; use torch.float32, torch.float16 or torch.bfloat16.")


def require_file(path: str | Path, what: str, hint: str = "") -> Path:
    """Return ``path`` as a Path, or raise ModelFileError naming the file and its folder."""
    path = Path(path)
    if not path.is_file():
        message = (f"{what}: '{path.name}' in folder '{path.parent}' is a directory, not a file." if path.is_dir()
                   else f"{what}: file not found: '{path.name}' in folder '{path.parent}'.")
        raise ModelFileError(message + (f" {hint}" if hint else ""))
    return path


def read_json(path: Path, what: str, hint: str = "") -> dict:
    """A config file of a diffusers folder; ModelFileError (with ``hint``) if missing or unreadable."""
    require_file(path, what, hint)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{what}: cannot read '{path}': {exc}") from exc


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """Read a ``.safetensors`` file or a torch pickle (``weights_only=True``) into a dict."""
    path = require_file(path, what)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = _torch_load(path)
    except Exception as exc:  # corrupt file, wrong format, pickle with code objects
        raise ModelFileError(f"{what}: cannot read '{path}': {exc}") from exc
    if not isinstance(obj, Mapping):
        raise ModelFileError(f"{what}: '{path}' holds a {type(obj).__name__}, expected a dict of tensors.")
    return dict(obj)


def _torch_load(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``, memory-mapped where the file format allows.

    Memory-mapping keeps a 3 GB ``.pth`` from being read into RAM before the tensors are needed;
    legacy (pre-zip) pickles such as the 2019 CMP checkpoint cannot be mapped and load normally.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def name_preview(names: Iterable[str]) -> str:
    """The first few names, sorted, and how many more there are (for error messages)."""
    names = sorted(names)
    shown = ", ".join(names[:_SHOW])
    return shown + (f", ... (+{len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def check_keys(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    *,
    file: str | Path,
    what: str,
) -> None:
    """Raise CheckpointKeyError unless ``state_dict`` has exactly the expected names and shapes.

    The message gives the counts of missing, unexpected and wrongly shaped tensors and the first
    few names of each, plus the file, so a user can tell a wrong download from a wrong folder.
    """
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k])}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or wrong_shape):
        return
    parts = [f"{what}: '{file}' does not match the expected checkpoint"]
    if missing:
        parts.append(f"{len(missing)} missing keys: {name_preview(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {name_preview(unexpected)}")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors with the wrong shape: {name_preview(wrong_shape)}")
    parts.append("Check that the file is the right model (and not a different version or a partial download).")
    raise CheckpointKeyError("; ".join(parts))


def load_strict(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    file: str | Path,
    what: str,
) -> None:
    """Check ``state_dict`` against ``module`` (names and shapes), then load it (``strict=True``)."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    check_keys(state_dict, expected, file=file, what=what)
    module.load_state_dict(state_dict, strict=True, assign=any(p.is_meta for p in module.parameters()))


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys that start with ``prefix``, with the prefix removed (others are dropped)."""
    n = len(prefix)
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(prefix)}
