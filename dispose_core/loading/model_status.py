"""Which model files of MODEL_FILES are present, and where we looked.

Missing weights are the first thing users of MimicMotion/DisPose packs trip over, so the
frontend's model-files panel shows, per entry, the exact name expected, every directory searched
(ComfyUI's own folders plus extra_model_paths.yaml ones) and the download page. This module is the
host-independent part: the ComfyUI route only supplies the directories per folder name.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .layout import MODEL_FILES, SVD_SINGLE_FILE, ModelFile

# Sub-folders of a diffusers folder that the loaders read (loading/sd15.py, loading/svd.py); a
# folder lacking one is reported incomplete, whether or not it has model_index.json.
DIFFUSERS_PARTS: dict[str, tuple[str, ...]] = {
    "sd15": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "svd": ("unet", "vae", "image_encoder", "feature_extractor", "scheduler"),
}

# Other forms a loader accepts instead of the layout entry, shown next to a missing one.
ALTERNATIVES: dict[str, str] = {
    "sd15": "or a single-file SD 1.5 checkpoint (.safetensors/.ckpt) in models/checkpoints/, "
            "picked in the DIFT Loader as checkpoints/<file>",
    "svd": "or ComfyUI's single file svd_xt_1_1.safetensors (or svd_xt.safetensors) in models/checkpoints/, "
           "picked in the MimicMotion Loader as checkpoints/<file>",
}

# A file that stands in for a missing layout entry: the entry counts as found when it is present.
FILE_ALTERNATIVES: dict[str, ModelFile] = {"svd": SVD_SINGLE_FILE}


@dataclass(frozen=True)
class ModelStatus:
    key: str
    folder: str
    name: str
    is_dir: bool
    size: str  # approximate download size from the layout table
    source: str
    used_by: str
    found: bool
    path: str | None  # where it was found (first match in search order, as folder_paths does)
    searched: list[str]  # every directory looked in, in order
    missing_parts: list[str]  # for a diffusers folder present but incomplete
    bytes_on_disk: int | None  # size of a found single file (a truncated download shows here)


def _missing_parts(path: Path, key: str) -> list[str]:
    """Sub-folders the loaders need that a diffusers folder lacks (a partial download)."""
    return [p for p in DIFFUSERS_PARTS.get(key, ()) if not (path / p).is_dir()]


def check_model(model: ModelFile, searched: Sequence[str | os.PathLike]) -> ModelStatus:
    """Look for one model in the given directories, first match wins."""
    dirs = [str(d) for d in searched]
    missing_parts: list[str] = []
    for d in dirs:
        candidate = Path(d) / model.name
        if model.is_dir:
            if not candidate.is_dir():
                continue
            missing = _missing_parts(candidate, model.key)
            if missing:
                missing_parts = missing_parts or missing
                continue
            return _status(model, dirs, str(candidate), None, [])
        elif candidate.is_file():
            return _status(model, dirs, str(candidate), candidate.stat().st_size, [])
    return _status(model, dirs, None, None, missing_parts)


def _status(model: ModelFile, dirs: list[str], path: str | None, size: int | None,
            missing_parts: list[str]) -> ModelStatus:
    return ModelStatus(model.key, model.folder, model.name, model.is_dir, model.size, model.source,
                       model.used_by, path is not None, path, dirs, missing_parts, size)


def model_status(search_dirs: Mapping[str, Sequence[str | os.PathLike]],
                 models: Sequence[ModelFile] = MODEL_FILES) -> list[ModelStatus]:
    """Status of every model; ``search_dirs`` maps a folder name to the directories searched."""
    return [_check_with_alternative(m, search_dirs) for m in models]


def _check_with_alternative(model: ModelFile, search_dirs: Mapping[str, Sequence[str | os.PathLike]]) -> ModelStatus:
    """``model``'s status; when it is missing but its FILE_ALTERNATIVES file is present (the SVD
    single file instead of the folder), found at that file, with both searches listed."""
    status = check_model(model, search_dirs.get(model.folder, ()))
    alternative = FILE_ALTERNATIVES.get(model.key)
    if status.found or alternative is None:
        return status
    other = check_model(alternative, search_dirs.get(alternative.folder, ()))
    if not other.found:
        return status
    return replace(status, found=True, path=other.path, searched=status.searched + other.searched,
                   missing_parts=[], bytes_on_disk=other.bytes_on_disk)


def status_report(search_dirs: Mapping[str, Sequence[str | os.PathLike]],
                  models: Sequence[ModelFile] = MODEL_FILES) -> dict:
    """JSON-ready report for the /dispose/models route and the frontend panel."""
    entries = model_status(search_dirs, models)
    rows = [asdict(e) | {"message": None if e.found else _message(m, e), "alternative": ALTERNATIVES.get(e.key)}
            for m, e in zip(models, entries)]
    missing = sum(not e.found for e in entries)
    return {"all_found": missing == 0, "missing": missing, "total": len(entries), "models": rows}


def _message(model: ModelFile, status: ModelStatus) -> str:
    """The sentence the loaders raise, plus what an incomplete diffusers folder lacks."""
    text = model.missing_message(status.searched)
    if status.missing_parts:
        text += f" A folder of that name exists but lacks: {', '.join(status.missing_parts)}."
    if status.key in ALTERNATIVES:
        text += f" ({ALTERNATIVES[status.key][0].upper()}{ALTERNATIVES[status.key][1:]}.)"
    return text
