"""Helpers shared by the node, workflow and host tests: importing the pack the way ComfyUI does."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "comfyui_dispose_pack"


def load_pack() -> ModuleType:
    """Import the repo root as a package (ComfyUI imports custom_nodes folders this way), once."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module
