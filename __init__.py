"""DisPose for ComfyUI: registration as a V3 extension (``comfy_entrypoint``) plus the frontend
files. Imports nothing heavy (no diffusers/onnxruntime/transformers), so the pack adds little to
ComfyUI's start; the stages import them when they run.

No NODE_CLASS_MAPPINGS on purpose: ComfyUI uses those when present and then ignores
``comfy_entrypoint``. WEB_DIRECTORY is read either way.
"""
from .nodes import DisPoseExtension
from .nodes.model_status import register_routes

WEB_DIRECTORY = "./web"
__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]


async def comfy_entrypoint() -> DisPoseExtension:
    return DisPoseExtension()


register_routes()
