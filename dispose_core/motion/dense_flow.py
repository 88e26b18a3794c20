"""Dense motion field by CMP (golden G3; official ``get_cmp_flow`` + the resize in ``preprocess``).

The reference image is encoded once; the per-frame part runs in batches of driving frames. CMP
works at 384x384 (any aspect ratio squashed); its flow is kept at that size in float16 (16x
smaller than a 576x1024 float32 canvas) and brought to the canvas per request (``DenseFlow.fields``) with legacy
``nearest`` and scaled by W/384 (x) and H/384 (y), as the official code does.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..interrupt import ShouldStop, stop_between_layers
from ..types import DenseFlow, PoseSequence
from .cmp import CMPModel, ImageFeatures
from .sparse_flow import AnchoredFlows, cmp_image, cmp_sparse_flow


# The flow is held in float16: half the memory, and its rounding (< 0.02 px at 384 for flows up to
# 64 px) stays far inside the G3 tolerance and below what CMP's own float16 run (the official GPU
# default) changes; the sampler's frames move by a relative L2 of about 1e-6.
STORED_DTYPE = torch.float16


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 2, 384, 384) flow -> (N, 2, height, width): legacy nearest, values scaled per axis."""
    if flow.shape[-2:] == (height, width):
        return flow
    out = F.interpolate(flow, size=(height, width), mode="nearest")
    scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], dtype=out.dtype, device=out.device)
    return out * scale[:, None, None]


@torch.no_grad()  # not inference_mode: the result stays an ordinary tensor for later in-place use
def propagate_flow(
    cmp: CMPModel,
    features: ImageFeatures,
    sparse: AnchoredFlows,
    height: int,
    width: int,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    should_stop: ShouldStop | None = None,
) -> DenseFlow:
    """CMP flows of every driving frame from the encoded 384 image and the 384 sparse flow, kept at
    CMP's size in ``STORED_DTYPE`` for the (H, W) canvas. ``should_stop()`` is asked before every layer
    (``interrupt.stop_between_layers``), so a Cancel does not wait for the batch."""
    if batch_size < 1:
        raise InputError(f"CMP batch size {batch_size} is invalid: use 1 or more.")
    device, dtype = cmp.device, cmp.dtype
    total = sparse.num_steps
    out = torch.empty(total, 2, sparse.height, sparse.width, dtype=STORED_DTYPE)  # CMP's output size
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        flow, mask = sparse.dense(start, stop, device=device, dtype=dtype)
        with stop_between_layers(should_stop, "CMP dense flow"):
            dense = cmp.propagate(features, flow, mask)
        out[start:stop] = dense.float().cpu()
        if progress is not None:
            progress(stop, total)
    return DenseFlow(flow=out, height=height, width=width)


def compute_dense_flow(
    cmp: CMPModel,
    reference: torch.Tensor,
    poses: PoseSequence,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    should_stop: ShouldStop | None = None,
    mask_invisible: bool = False,
) -> DenseFlow:
    """Dense flow reference -> each driving frame (``DenseFlow.fields``: ``(n, 2, H, W)`` float32 canvas
    pixels; held at CMP's size in float16 on the CPU).

    ``reference``: (3, H, W) RGB in [0, 1] at the canvas size of ``poses``. ``progress(done, total)``
    is called after each batch; ``should_stop()`` before every layer of CMP (True, or its own
    exception, interrupts).
    ``mask_invisible``: see ``sparse_flow`` (off = official behaviour).
    """
    if reference.ndim != 3 or tuple(reference.shape[1:]) != (poses.height, poses.width):
        raise InputError(
            f"Reference image shape {tuple(reference.shape)} does not match the pose canvas "
            f"(3, {poses.height}, {poses.width}). Resize the reference to the generation size first."
        )
    sparse = cmp_sparse_flow(poses, mask_invisible=mask_invisible)
    with torch.no_grad():
        features = cmp.encode_image(cmp_image(reference)[None].to(device=cmp.device, dtype=cmp.dtype))
    return propagate_flow(
        cmp, features, sparse, poses.height, poses.width,
        batch_size=batch_size, progress=progress, should_stop=should_stop,
    )

