"""Tiny random-weight model files in the real on-disk formats, key names and folder layout.

Every module in this package that defines ``write_tiny_models(models_dir: Path) -> list[Path]``
contributes its files; ``write_all`` runs them all. Tests and the smoke demo use this, so every
real loader runs end to end without a download.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def writer_modules() -> list[str]:
    """Names of the modules in this package that write tiny models, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )


def write_all(models_dir: str | Path, only: list[str] | None = None) -> list[Path]:
    """Write every tiny model (or those of the modules in ``only``) under ``models_dir``."""
    models_dir = Path(models_dir)
    written: list[Path] = []
    for name in writer_modules():
        if only and name not in only:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        written += module.write_tiny_models(models_dir)
    return written
