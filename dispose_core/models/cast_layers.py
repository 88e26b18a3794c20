"""The library's own cast-on-forward layers: fp8 weight storage and streaming outside a host.

A Linear or Conv layer keeps its weight where and how it is stored, and its forward casts the
weight (and bias) to the input's dtype and device for that call only. Two uses, one mechanism:

* fp8 weight storage (``store_weights_fp8``): weights in ``float8_e4m3fn`` (1 byte instead of 2),
  upcast per layer to the compute dtype;
* streaming (``stream_weights``): layers beyond a memory budget keep their weights on the offload
  device (CPU) and copy them to the compute device in each forward, so only the resident layers'
  weights and one layer's copy occupy the load device.

Inside ComfyUI the models are built with ComfyUI's own layers (``comfy.ops``, see
``layer_ops.ModelOps``), which cast, stream and patch by ComfyUI's rules; these layers serve the
CLI, the benchmarks and the library's fp8 accuracy tests. ``store_weights_fp8`` works on either
kind (a host's layers know no per-tensor scale: pass ``scaled=False``), and the placement helpers
(``compute_placement``, ``set_placement``, ``place_other_tensors``) are shared with the host.

Layers are switched in place (their class becomes the casting subclass), so state-dict names stay
the same and the official architectures are untouched. Norm layers, embeddings and other small
parameters keep the compute dtype and sit on the compute device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
_FP8_MAX = float(torch.finfo(FP8).max)  # 448: larger magnitudes have no e4m3fn value


class _CastWeights:
    """Mixin: the layer's weight and bias for an input ``x``, in x's dtype on x's device."""

    streamed: bool = False  # the weight stays on the offload device between calls
    transfers: int = 0  # how many forwards copied the weight from another device (or streamed it)

    def _weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = self.weight
        if w.device != x.device or self.streamed:
            self.transfers += 1
        w = w.to(device=x.device, dtype=x.dtype, non_blocking=True)
        scale = getattr(self, "weight_scale", None)  # per-tensor scale of fp8 weights (a buffer), if any
        if scale is not None:
            w = w * scale.to(device=x.device, dtype=x.dtype)
        b = None if self.bias is None else self.bias.to(device=x.device, dtype=x.dtype, non_blocking=True)
        return w, b


class CastLinear(_CastWeights, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, *self._weights(x))


class CastConv1d(_CastWeights, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self._weights(x))


class CastConv2d(_CastWeights, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self._weights(x))


class CastConv3d(_CastWeights, nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self._weights(x))


_CASTING = {nn.Linear: CastLinear, nn.Conv1d: CastConv1d, nn.Conv2d: CastConv2d, nn.Conv3d: CastConv3d}


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Every Linear/Conv layer of ``model``, of whichever class (ours, torch's or a host's subclass)."""
    return [m for m in model.modules() if isinstance(m, tuple(_CASTING))]


def casting_layers(model: nn.Module) -> list[nn.Module]:
    """Switch every plain torch Linear/Conv layer of ``model`` to its casting subclass (idempotent;
    a host's layer classes are left as they are); returns all Linear/Conv layers."""
    for module in model.modules():
        if type(module) in _CASTING:
            module.__class__ = _CASTING[type(module)]
    return weight_layers(model)


def compute_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype ``model`` computes in: set by ``store_weights_fp8`` / ``stream_weights`` (or
    by a host's wrapper of its own model, which has no parameters here), else those of its first
    parameter (a plain module)."""
    device, dtype = getattr(model, "compute_device", None), getattr(model, "compute_dtype", None)
    if device is None or dtype is None:
        param = next(model.parameters())
        device, dtype = device or param.device, dtype or param.dtype
    return device, dtype


def set_placement(model: nn.Module, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> None:
    """Record on every submodule what it computes in (sub-models such as the point adapter ask too).

    fp8 storage records only the dtype: the device stays that of the weights, so a host that moves
    the whole model (ComfyUI's ModelPatcher) moves where it computes. Streaming fixes the device;
    so must a host that leaves some casting layers on the offload device (ComfyUI's partial load),
    else the first parameter's device would decide.
    """
    for module in model.modules():
        if dtype is not None:
            module.compute_dtype = dtype
        if device is not None:
            module.compute_device = torch.device(device)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _layer_tensors(layer: nn.Module) -> list[torch.Tensor]:
    return [t for t in (layer.weight, layer.bias) if t is not None]


def weight_bytes(model: nn.Module, device: torch.device | str | None = None) -> int:
    """Bytes of ``model``'s parameters and buffers (only those on ``device`` when given)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(_nbytes(t) for t in tensors if device is None or t.device == torch.device(device))


@torch.no_grad()
def store_weights_fp8(model: nn.Module, *, scaled: bool = True) -> nn.Module:
    """Store every Linear/Conv weight of ``model`` in float8_e4m3fn; compute stays in the model's dtype.

    ``scaled`` (default) keeps one float32 scale per weight tensor (its largest magnitude maps to
    448, the e4m3fn maximum), so small weights do not fall into fp8's coarse subnormal range; off,
    the weights are cast as they are (what ComfyUI's ``--fp8_e4m3fn-unet`` does; magnitudes above
    448 are clamped), the only form a host's casting layers (ComfyUI's ``manual_cast``) can use.
    Biases, norms and embeddings stay in the compute dtype.
    """
    dtype = compute_placement(model)[1]
    layers = casting_layers(model)
    if scaled and not all(isinstance(layer, _CastWeights) for layer in layers):
        raise ValueError("store_weights_fp8: a host's layers apply no per-tensor scale; pass scaled=False.")
    for layer in layers:
        w = layer.weight.float()
        scale = (w.abs().amax() / _FP8_MAX).clamp_min(torch.finfo(torch.float32).tiny) if scaled else None
        stored = (w / scale if scaled else w).clamp(-_FP8_MAX, _FP8_MAX).to(FP8)
        layer.weight = nn.Parameter(stored, requires_grad=False)
        if scaled:
            layer.register_buffer("weight_scale", scale.reshape(()), persistent=False)
    set_placement(model, dtype)
    return model


@torch.no_grad()
def place_other_tensors(model: nn.Module, device: torch.device | str,
                        casting: list[nn.Module] | None = None) -> int:
    """Move every tensor of ``model`` that is not a weight or bias of a ``casting`` layer (default:
    our Linear/Conv casting layers) to ``device``: norms, embeddings, blend factors, fp8 scales
    (small); their bytes. They have no casting forward, so they must sit where the model computes
    whichever layers stay on the offload device (streaming here, or a host's partial load: ComfyUI
    leaves modules it cannot cast off the device once its budget is spent)."""
    device = torch.device(device)
    casting = casting_layers(model) if casting is None else casting
    layer_tensors = {id(t) for layer in casting for t in _layer_tensors(layer)}
    placed = 0  # the offload device may be the same one
    for module in model.modules():
        for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            if id(t) not in layer_tensors:
                t.data = t.data.to(device)
                placed += _nbytes(t)
    return placed


@dataclass(frozen=True)
class StreamPlan:
    """Where ``stream_weights`` put the weights: bytes resident on the load device and streamed."""

    resident_bytes: int
    streamed_bytes: int
    resident_layers: int
    streamed_layers: int


@torch.no_grad()
def stream_weights(model: nn.Module, load_device: torch.device | str, budget_bytes: int) -> StreamPlan:
    """Fit ``model`` into ``budget_bytes`` on ``load_device`` by streaming the Linear/Conv weights that do not fit.

    Every tensor that is not a Linear/Conv weight or bias (norms, embeddings, fp8 scales: small)
    goes to ``load_device`` first; then Linear/Conv layers are made resident in module order while
    the budget lasts, and the rest keep their weights where they are (the offload device, normally
    the CPU) and copy them to ``load_device`` in each forward. The output is the same as a full
    load's: the same weights used the same way; streaming only adds the transfers.
    """
    load_device = torch.device(load_device)
    dtype = compute_placement(model)[1]
    layers = casting_layers(model)
    used = place_other_tensors(model, load_device)  # our accounting: bytes placed on the load device
    resident = streamed = streamed_bytes = 0
    for layer in layers:
        size = sum(_nbytes(t) for t in _layer_tensors(layer))
        layer.streamed = used + size > budget_bytes
        if layer.streamed:
            streamed, streamed_bytes = streamed + 1, streamed_bytes + size
            continue
        for t in _layer_tensors(layer):
            t.data = t.data.to(load_device)
        used, resident = used + size, resident + 1
    set_placement(model, dtype, load_device)
    return StreamPlan(used, streamed_bytes, resident, streamed)

