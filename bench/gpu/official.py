"""The official comparator: lihxxx/DisPose (pinned commit) with diffusers 0.27, in its own environment.

Its sources are never committed (no licence): ``bash bench/gpu/prepare.sh`` copies them into the
ignored carry folder, and ``DISPOSE_REF`` names them. Its pinned environment is the interpreter named
by ``DISPOSE_REF_PYTHON`` (``prepare.sh --cpu`` builds one here; on the device the carried wheels are
installed into their own ``--target`` folder, named by ``DISPOSE_REF_SITE``, put first on the
official subprocess's PYTHONPATH, with the device's python3 as ``DISPOSE_REF_PYTHON``). Without both, the official column is skipped, and
:func:`availability` says so in one line.
"""
from __future__ import annotations

import os
from pathlib import Path

PINNED_COMMIT = "c38ab1329c756ab18fd0cdf8a49b915986ae37e6"  # the commit the golden cases were made with


def availability() -> str | None:
    """None when the official pipeline can run, else why not (one line)."""
    ref, python = os.environ.get("DISPOSE_REF"), os.environ.get("DISPOSE_REF_PYTHON")
    if not ref or not (Path(ref) / "inference_ctrl.py").is_file():
        return "DISPOSE_REF does not name the official sources (bash bench/gpu/prepare.sh copies them)"
    if not python or not Path(python).is_file():
        return "DISPOSE_REF_PYTHON does not name the official environment's python (bash bench/gpu/prepare.sh --cpu)"
    return "the official driver is not written yet (see bench/gpu/README.md, 'Not done')"


def run(mode, sizes: dict, widths, device) -> dict:
    """The official pipeline's per-stage figures for ``mode``, or why it was skipped."""
    reason = availability()
    return {"status": f"skipped: {reason}"} if reason else {"status": "ran"}
