"""DisPose Guidance Preview: draws the poses, a motion field, the dense flow or the point
correspondence as images, only where a graph asks for them.

The stage nodes return no preview of their own: ComfyUI keeps every output of a node for the whole
run whether or not anything is linked to it, and one preview image per frame of a long clip costs
about as much memory as the guidance itself.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.errors import InputError
from .common import Flow, Motion, Points, Poses, schema, stage

# Each guidance input and the function that draws it (the legacy nodes' preview outputs use the same).
DRAWERS: dict[str, Callable[[Any, int], torch.Tensor]] = {
    "poses": pipeline.skeleton_preview,
    "motion_field": pipeline.field_preview,
    "dense_flow": pipeline.field_preview,
    "point_embeddings": pipeline.points_preview,
}


class GuidancePreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseGuidancePreview", "DisPose Guidance Preview",
            "Draws one guidance signal as images, one per frame, to look at (e.g. with CreateVideo and "
            "SaveVideo): connect exactly one input, and use one node per signal.",
            inputs=[
                io.Int.Input("long_side", default=pipeline.PREVIEW_LONG_SIDE, min=64, max=1024, step=8,
                             tooltip="Longer side of the preview in pixels; never more than the canvas, and for "
                                     "point_embeddings never more than the 256 px picture DIFT Point Embed keeps "
                                     "(it keeps one small image, not one per frame). The preview is held in memory "
                                     "for the run: large previews of long clips cost gigabytes."),
                Poses.Input("poses", optional=True,
                            tooltip="From DWPose Extract: the skeletons of every frame (reference first); when the "
                                    "reference shows several people, the one animated is outlined."),
                Motion.Input("motion_field", optional=True,
                             tooltip="From Sparse Motion Field: the field as colours (direction = hue, strength = "
                                     "saturation), one image per driving frame."),
                Flow.Input("dense_flow", optional=True,
                           tooltip="From CMP Dense Flow: the flow as colours, one image per driving frame."),
                Points.Input("point_embeddings", optional=True,
                             tooltip="From DIFT Point Embed: the reference's feature map in PCA colours, then each "
                                     "frame's keypoints in the colour of the reference feature they carry."),
            ],
            outputs=[io.Image.Output(display_name="preview", tooltip="One image per frame of the connected input.")])

    @classmethod
    def execute(cls, long_side: int, **guidance: Any) -> io.NodeOutput:
        connected = {name: value for name, value in guidance.items() if value is not None}
        if len(connected) != 1:
            got = " and ".join(connected) if connected else "nothing"
            raise InputError(f"DisPose Guidance Preview draws one input, got {got}. Connect exactly one of "
                             f"{', '.join(DRAWERS)}; use one preview node per signal.")
        ((name, value),) = connected.items()
        with stage():
            return io.NodeOutput(DRAWERS[name](value, long_side))
