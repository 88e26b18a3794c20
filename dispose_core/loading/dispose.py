"""Load ``DisPose.pth`` into a HybridControlNet built for the loaded MimicMotion UNet.

Official behaviour: ``ControlNetSVDModel.from_unet(unet)`` (the encoder starts as a copy of the
MimicMotion UNet's conv_in, time embedding, down and mid blocks), then
``load_state_dict(DisPose.pth, strict=False)``. Here the same result is assembled directly (the
ControlNet is built on the meta device, no random init of ~700 M parameters) with explicit checks
(``manifests/dispose_controlnet.json``): keys that fall back to the UNet copy may be absent from
the file; every other key (motion encoder, point adapter, zero convs, add_embedding) must be present;
unknown keys and wrong shapes are errors. ``LoadReport`` says how many tensors came from where.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.controlnet import COPIED_FROM_UNET, ControlNetDims, HybridControlNet
from ..models.layer_ops import PLAIN_OPS, ModelOps
from ..models.unet import MimicMotionUNet
from .checkpoint import check_dtype, check_keys, read_checkpoint
from .layout import BY_KEY
from .svd import cast

logger = logging.getLogger(__name__)

_MOTION = "controlnet_cond_embedding."
_POINTS = "point_adapter.model_list."


@dataclass(frozen=True)
class LoadReport:
    """Where the ControlNet's tensors came from (a trained DisPose.pth normally holds all of them)."""

    file: Path
    from_file: int
    from_unet: int

    @property
    def total(self) -> int:
        return self.from_file + self.from_unet

    def __str__(self) -> str:
        return (
            f"DisPose ControlNet '{self.file.name}': {self.from_file} tensors from the file, "
            f"{self.from_unet} copied from the MimicMotion UNet ({self.total} in all)"
        )


def controlnet_dims(state: dict[str, torch.Tensor]) -> ControlNetDims:
    """Motion-encoder widths and point-adapter sizes read from the checkpoint's shapes.

    The official sizes are hard-coded; reading them lets smaller (tiny) checkpoints load too.
    Missing keys leave the official default, and the strict key check then reports them.
    """
    default = ControlNetDims()
    first = state.get(f"{_MOTION}conv_in_flow.weight")
    if first is None:
        motion = default.motion_channels
    else:
        stages = sorted(
            int(k.split(".")[2]) for k in state if k.startswith(f"{_MOTION}blocks_flow.") and k.endswith(".weight")
        )
        motion = (first.shape[0],) + tuple(state[f"{_MOTION}blocks_flow.{i}.weight"].shape[0] for i in stages[1::2])
    mlp_in = state.get(f"{_POINTS}0.mlp.0.weight")
    if mlp_in is None:
        return ControlNetDims(motion, default.point_embedding_channels, default.point_mid_dim)
    return ControlNetDims(motion, mlp_in.shape[1], mlp_in.shape[0])


def load_dispose_controlnet(
    path: str | Path, unet: MimicMotionUNet, dtype: torch.dtype = torch.float32,
    unet_state: Mapping[str, torch.Tensor] | None = None, ops: ModelOps = PLAIN_OPS,
) -> tuple[HybridControlNet, LoadReport]:
    """HybridControlNet = copy of ``unet``'s encoder overlaid with ``DisPose.pth`` (strict checks).

    ``unet_state``: the UNet's weights as loaded, when ``unet`` no longer holds them as they were
    (fp8 storage): the copy is then taken from it, so the ControlNet is built from the UNet before fp8.
    ``ops``: the host's layer classes, attention and stop check (plain torch by default).
    """
    check_dtype(dtype, "DisPose loader")
    path = BY_KEY["dispose"].require(path)
    state = read_checkpoint(path, "DisPose ControlNet")
    net, report = overlay_on_unet(state, unet, file=path, unet_state=unet_state, ops=ops)
    logger.info("%s", report)
    return cast(net.eval().requires_grad_(False), dtype, unet.device), report


def overlay_on_unet(
    state: dict[str, torch.Tensor], unet: MimicMotionUNet, *, file: Path,
    unet_state: Mapping[str, torch.Tensor] | None = None, ops: ModelOps = PLAIN_OPS,
) -> tuple[HybridControlNet, LoadReport]:
    """The ControlNet for ``unet`` with ``state`` laid over the copy of the UNet's encoder (checked)."""
    with torch.device("meta"):
        net = HybridControlNet(unet.config, controlnet_dims(state), ops)
    expected = {k: v.shape for k, v in net.state_dict().items()}
    fallback = {k for k in expected if k.split(".")[0] in COPIED_FROM_UNET}
    check_keys(
        state, {k: s for k, s in expected.items() if k in state or k not in fallback},
        file=file, what="DisPose ControlNet",
    )
    missing = fallback - state.keys()
    source = (unet.state_dict() if unet_state is None else unet_state) if missing else {}
    copied = {k: source[k].detach().clone() for k in missing}
    net.load_state_dict({**state, **copied}, strict=True, assign=True)
    return net, LoadReport(file, from_file=len(state), from_unet=len(copied))
