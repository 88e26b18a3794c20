"""What a host builds the models with: its layer classes, its attention function, its stop check.

A host such as ComfyUI has its own Linear/Conv/norm classes (which cast, offload and patch
weights: fp8 storage, partial loading, LoRA) and its own attention kernels (sage, flash, ...).
The models take them as one ``ModelOps`` at construction; ``PLAIN_OPS`` (torch layers,
``scaled_dot_product_attention``, no stop check) keeps the library host-independent.

The diffusers blocks of the SVD UNet create torch layers themselves, so ``apply_ops`` switches
each plain torch layer to the host's subclass of it in place (same parameters, same state-dict
names) and routes every diffusers ``Attention`` through the host's attention function.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

if TYPE_CHECKING:  # diffusers is imported where models are built, not by a host importing this module
    from diffusers.models.attention_processor import Attention

# (q, k, v, heads) -> out, all (B, tokens, heads * head_dim): the layout of ComfyUI's optimized_attention
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]

# The torch layer classes a host may replace; its namespace gives a subclass of each under the same name.
LAYER_NAMES: tuple[str, ...] = ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")


class ModelInterrupted(Exception):
    """Raised mid-forward when the host's ``should_stop()`` returns True (a host may raise its own)."""


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention with torch's fused kernel; inputs and output (B, tokens, heads * head_dim)."""
    b, _, inner = q.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, -1, heads, inner // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v), dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(b, -1, inner)


@dataclass(frozen=True)
class ModelOps:
    """Layer classes (a namespace with the ``LAYER_NAMES``), attention function and stop check."""

    operations: Any = nn
    attention: AttentionFn = sdpa_attention
    # called before each layer of the UNet's / ControlNet's blocks: True (or the host's exception) stops the forward
    should_stop: Callable[[], bool] | None = field(default=None, compare=False)


PLAIN_OPS = ModelOps()


class OpsAttnProcessor:
    """A diffusers attention processor for the SVD blocks' plain self/cross-attention that calls
    ``attention`` (diffusers' own processor calls torch's SDPA directly)."""

    def __init__(self, attention: AttentionFn) -> None:
        self.attention = attention

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 **kwargs: Any) -> torch.Tensor:
        if attention_mask is not None or hidden_states.ndim != 3:
            raise InputError("MimicMotion attention: masks and 4-D inputs are not used by the SVD blocks; "
                             "call the model's forward, not its attention layers.")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        out = self.attention(attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context), attn.heads)
        return attn.to_out[1](attn.to_out[0](out.to(hidden_states.dtype)))


def _check_plain_attention(attn: Attention) -> None:
    """The processor covers exactly the attention of the SVD blocks; anything else is a wrong model."""
    extras = (attn.spatial_norm, attn.group_norm, attn.norm_cross, attn.norm_q, attn.norm_k)
    if any(e is not None and e is not False for e in extras) or attn.residual_connection \
            or attn.rescale_output_factor != 1.0:
        raise InputError("MimicMotion attention: this model's attention has norms or rescaling the SVD UNet "
                         "does not have; build MimicMotion/DisPose models from an SVD config.")


def apply_ops(model: nn.Module, ops: ModelOps) -> nn.Module:
    """Give ``model`` the host's layer classes, attention and stop check (in place; returns it).

    Only exact torch classes are switched (a layer already of a host class is left as it is), and the
    host class must subclass the torch one, so parameters, buffers and forward arguments stay valid.
    The stop check runs before every resnet and transformer of the diffusers blocks (``stop_check_layers``).
    """
    from diffusers.models.attention_processor import Attention

    swaps = {getattr(nn, name): getattr(ops.operations, name) for name in LAYER_NAMES}
    for torch_cls, host_cls in swaps.items():
        if not issubclass(host_cls, torch_cls):
            raise TypeError(f"ModelOps.operations.{torch_cls.__name__} must subclass torch.nn.{torch_cls.__name__}.")
    processor = OpsAttnProcessor(ops.attention)
    hook = _StopCheck(model)
    for module in model.modules():
        if type(module) in swaps:
            module.__class__ = swaps[type(module)]
        elif isinstance(module, Attention):
            _check_plain_attention(module)
            module.set_processor(processor)
        for layer in stop_check_layers(module):
            layer.register_forward_pre_hook(hook)
    model.should_stop = ops.should_stop
    return model


def stop_check_layers(block: nn.Module) -> list[nn.Module]:
    """The layers of a diffusers down/mid/up block (its resnets and transformers) before each of
    which the stop check runs. Per layer, not per block: at 576x1024 with 16-frame tiles one SVD up
    block is up to 16 % of a DisPose tile call's FLOPs (tens of seconds on a CPU), one layer at most 2.7 %."""
    if not isinstance(getattr(block, "resnets", None), nn.ModuleList):
        return []
    return [*block.resnets, *(getattr(block, "attentions", None) or ())]


class _StopCheck:
    """Forward pre-hook: the stop check of ``model`` (a class, not a closure, so ``copy.deepcopy``
    of the model gives a hook that asks the copy).

    Skipped while ``torch.compile`` traces (e.g. core TorchCompileModel): a host's check takes a lock,
    which would split the compiled graph at every layer; a compiled model is then stopped between
    tile calls instead."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if torch.compiler.is_compiling():
            return
        should_stop = getattr(self.model, "should_stop", None)
        if should_stop is not None and should_stop():
            raise ModelInterrupted("The model's forward was interrupted.")
