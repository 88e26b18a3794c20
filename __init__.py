"""DisPose for ComfyUI: node registration. Imports nothing heavy (no diffusers/onnxruntime/
transformers), so the pack adds little to ComfyUI's start; the stages import them when they run."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.model_status import register_routes

WEB_DIRECTORY = "./web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

register_routes()
