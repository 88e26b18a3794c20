"""DisPose for ComfyUI: registration as a V3 extension (``comfy_entrypoint``) plus the frontend
files. Imports nothing heavy (no diffusers/onnxruntime/transformers), so the pack adds little to
ComfyUI's start; the stages import them when they run.

No NODE_CLASS_MAPPINGS on purpose: ComfyUI uses those when present and then ignores
``comfy_entrypoint``. WEB_DIRECTORY is read either way.
"""
try:
    import comfy_api.latest  # noqa: F401
except ImportError as err:
    raise ImportError("DisPose for ComfyUI needs a ComfyUI with the V3 node API (comfy_api.latest; tested with "
                      "ComfyUI 0.3.64 and 0.33.0): update ComfyUI, then restart it.") from err

from .nodes import DisPoseExtension  # noqa: E402
from .nodes.model_status import register_routes  # noqa: E402

WEB_DIRECTORY = "./web"
__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]


async def comfy_entrypoint() -> DisPoseExtension:
    return DisPoseExtension()


register_routes()
