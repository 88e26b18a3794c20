"""ComfyUI's attention functions as benchmark modes.

Inside ComfyUI the pack's UNet, PoseNet and ControlNet take ``comfy.ldm.modules.attention.optimized_attention``
when they are built (``nodes/comfy_bridge.py`` ``model_ops``): the function ComfyUI's flags pick
(``--use-sage-attention``, ``--use-flash-attention``, ``--use-split-cross-attention``, ...). A mode names
one of the functions ComfyUI registers (``register_attention_function``: "pytorch", "split", "sub_quad"
always; "sage", "flash" only when their package imports) and the loaders build the models with it, as
the flag would, without restarting ComfyUI. Runs inside ComfyUI (imported after it is on sys.path).
"""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from unittest import mock

import torch

# the package ComfyUI registers each optional function for (comfy/ldm/modules/attention.py)
PACKAGES = {"sage": "sageattention", "sage3": "sageattn3", "flash": "flash_attn", "xformers": "xformers"}


def unavailable(name: str) -> str | None:
    """Why ComfyUI has no attention function ``name`` here (None if it has)."""
    from comfy.ldm.modules import attention

    if attention.get_attention_function(name, None) is not None:
        return None
    package = PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (ComfyUI registers '{name}' attention only with it)"
    return f"ComfyUI registered no '{name}' attention function"


@contextmanager
def building_with(name: str | None):
    """While the loader nodes run, ComfyUI's ``optimized_attention`` is the function registered as
    ``name`` (the models keep it after; the module global is restored). None: ComfyUI's own choice."""
    from comfy.ldm.modules import attention

    if name is None:
        yield
        return
    with mock.patch.object(attention, "optimized_attention", attention.get_attention_function(name)):
        yield


def attention_in(*models: torch.nn.Module) -> str:
    """The registered name (else the function name) of the attention the models' attention layers call,
    e.g. "pytorch"; several names joined by "+" if they differ."""
    from comfy.ldm.modules import attention

    by_function = {fn: name for name, fn in attention.REGISTERED_ATTENTION_FUNCTIONS.items()}
    # the pack's OpsAttnProcessor (of the pack as ComfyUI imported it, so matched by its attribute)
    used = {getattr(getattr(module, "processor", None), "attention", None)
            for model in models for module in model.modules()} - {None}
    names = {by_function.get(fn, getattr(fn, "__name__", repr(fn))) for fn in used}
    return "+".join(sorted(names)) or "none"
