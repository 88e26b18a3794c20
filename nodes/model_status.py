"""Server route for the frontend's model-files panel: ``GET /dispose/models``.

The report itself is host-independent (``dispose_core.loading.model_status``); this module only
supplies ComfyUI's search directories per folder (including extra_model_paths.yaml entries) and
adds the route to ComfyUI's PromptServer, which serves it at ``/dispose/models`` and
``/api/dispose/models``. The disk is checked on every request, so the panel's refresh shows files
copied in while ComfyUI runs.
"""
from __future__ import annotations

import sys

from ..dispose_core.loading.layout import MODEL_FOLDERS
from ..dispose_core.loading.model_status import FILE_ALTERNATIVES, status_report
from .comfy_bridge import folder_dirs

ROUTE = "/dispose/models"


def models_report() -> dict:
    """Status of every model file of the pack, as the route returns it."""
    folders = MODEL_FOLDERS + tuple(m.folder for m in FILE_ALTERNATIVES.values())  # + checkpoints (SVD file)
    return status_report({folder: folder_dirs(folder) for folder in folders})


def register_routes() -> bool:
    """Add the route to the running PromptServer once; False when there is no server (ComfyUI
    imported in-process by tests: its ``server`` module is imported only by main.py)."""
    server_module = sys.modules.get("server")
    server = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    if server is None:
        return False
    from aiohttp import web

    if any(getattr(r, "path", None) == ROUTE for r in server.routes):
        return True

    @server.routes.get(ROUTE)
    async def dispose_models(request: web.Request) -> web.Response:
        return web.json_response(models_report())

    return True
