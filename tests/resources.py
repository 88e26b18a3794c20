"""Where the tests find their reference data, and which outside resources this test run has: golden data, ComfyUI in-process, a ComfyUI server,
a browser. Each test that needs one carries its marker (golden, comfy, host, browser); conftest
skips it with one shared reason when the resource is absent (or fails it, for golden data on CI).
"""
from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Key names and shapes of the real checkpoints users download (small facts, kept in the repo).
MANIFESTS = Path(__file__).resolve().parent / "reference" / "manifests"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def golden_dir() -> Path:
    """The official code's golden cases: $DISPOSE_GOLDEN_DIR, else ../shared/reference/golden."""
    return Path(os.environ.get("DISPOSE_GOLDEN_DIR", REPO.parent / "shared" / "reference" / "golden"))


def comfy_checkout() -> Path | None:
    """The ComfyUI checkout named by COMFYUI_PATH, if it is one."""
    path = os.environ.get("COMFYUI_PATH")
    return Path(path) if path and (Path(path) / "main.py").is_file() else None


def comfy_python(checkout: Path) -> str:
    """ComfyUI's interpreter: COMFYUI_PYTHON, else a venv inside or next to the checkout, else ours."""
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    for venv in (checkout / "venv", checkout / ".venv", checkout.parent / "venv"):
        if (venv / "bin" / "python").exists():
            return str(venv / "bin" / "python")
    return sys.executable


def activate_comfy() -> str | None:
    """Make ComfyUI's modules importable in this process (CPU only). None when that worked, else
    why not. Must run before anything imports the pack's nodes (they import comfy_api)."""
    checkout = comfy_checkout()
    if checkout is None:
        return "no ComfyUI: set COMFYUI_PATH (bash scripts/test.sh does, for each ComfyUI archive)"
    # ComfyUI's top-level modules (nodes, utils, server...) must win over this repo's folders.
    sys.path.insert(0, str(checkout))
    try:
        from comfy.cli_args import args

        args.cpu = True  # before comfy.model_management is imported, or it asks for CUDA
        import comfy.model_management  # noqa: F401
        import comfy_api.latest  # noqa: F401
        import folder_paths  # noqa: F401
    except ImportError as err:
        sys.path.remove(str(checkout))
        return f"ComfyUI at {checkout} does not import with {sys.executable} ({err}): run with ComfyUI's Python"
    return None


@cache
def missing(resource: str) -> str | None:
    """Why ``resource`` (a marker name) is not available in this run, or None when it is."""
    if resource == "golden":
        d = golden_dir()
        return None if d.is_dir() else f"golden data not found at {d}: set DISPOSE_GOLDEN_DIR"
    if resource == "comfy":
        return COMFY_MISSING
    checkout = comfy_checkout()
    if checkout is None:
        return "no ComfyUI server: set COMFYUI_PATH (bash scripts/test.sh does, for each ComfyUI archive)"
    if resource == "browser":
        if not Path(CHROMIUM).exists():
            return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
        py = comfy_python(checkout)
        if subprocess.run([py, "-c", "import playwright.sync_api"], capture_output=True).returncode:
            return f"python playwright is not installed for {py} (pip install playwright)"
    return None


COMFY_MISSING = activate_comfy()
