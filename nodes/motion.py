"""Sparse Motion Field, CMP Loader (DisPose) and CMP Dense Flow."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.types import PoseSequence
from . import comfy_bridge as bridge
from .common import (CMPModel, Flow, Motion, advanced, model_input, model_path, poses_input, precision_input,
                     reference_input, schema, stage)


class SparseMotionField(io.ComfyNode):
    """Without a preview output, which ComfyUI would keep for the whole run even where nothing
    shows it (DisPose Guidance Preview draws the colours on demand)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseSparseMotionFieldV2", "Sparse Motion Field",
            "Keypoint displacements between consecutive frames, splatted on the canvas and "
            "Gaussian-smoothed (DisPose's sparse motion field). See it with DisPose Guidance Preview.",
            inputs=[
                poses_input(),
                io.Int.Input("kernel_size", default=pipeline.SPARSE_KERNEL_SIZE, min=1, max=999, step=2,
                             tooltip="Gaussian kernel size in pixels (odd; official 199)."),
                io.Float.Input("sigma", default=pipeline.SPARSE_SIGMA, min=0.1, max=200.0, step=0.1,
                               tooltip="Gaussian sigma in pixels (official 20)."),
                advanced(io.Boolean.Input(
                    "drop_vanishing", default=False, optional=True,
                    tooltip="Off (official): a keypoint seen in one frame but lost in the next still writes a "
                            "displacement, a jump towards the image corner (0, 0). On: such a step writes "
                            "nothing.")),
            ],
            outputs=[Motion.Output(display_name="motion_field", tooltip="For Hybrid ControlNet Apply (and "
                                                                         "DisPose Guidance Preview).")])

    @classmethod
    def execute(cls, poses: PoseSequence, kernel_size: int, sigma: float,
                drop_vanishing: bool = False) -> io.NodeOutput:
        with stage():
            return io.NodeOutput(pipeline.sparse_motion(poses, kernel_size=kernel_size, sigma=sigma,
                                                        drop_vanishing=drop_vanishing))


class CMPLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseCMPLoader", "CMP Loader (DisPose)",
            "Loads CMP (conditional motion propagation), which turns sparse flow into dense flow.",
            inputs=[model_input("cmp_checkpoint", "cmp", "CMP checkpoint (resnet50_vip+mpii_liteflow)."),
                    precision_input()],
            outputs=[CMPModel.Output(display_name="cmp_model", tooltip="For CMP Dense Flow.")])

    @classmethod
    def validate_inputs(cls, cmp_checkpoint: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, cmp_checkpoint: str, precision: str) -> io.NodeOutput:
        path = model_path("cmp", cmp_checkpoint)
        from ..dispose_core.motion.cmp import load_cmp

        return io.NodeOutput(bridge.manage(load_cmp(path, bridge.pick_dtype(precision))))


class CMPDenseFlow(io.ComfyNode):
    """Without a preview output, which ComfyUI would keep for the whole run even where nothing
    shows it (DisPose Guidance Preview draws the colours on demand)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseCMPDenseFlowV2", "CMP Dense Flow",
            "Propagates each frame's keypoint motion over the whole reference image with CMP. "
            "See it with DisPose Guidance Preview.",
            inputs=[
                CMPModel.Input("cmp_model", tooltip="From CMP Loader (DisPose)."),
                reference_input(),
                poses_input(),
                io.Int.Input("batch_size", default=pipeline.CMP_BATCH_SIZE, min=1, max=256,
                             tooltip="Frames per CMP forward pass; lower it if memory runs out. On a CPU, "
                                     "1-2 is fastest."),
                advanced(io.Boolean.Input(
                    "mask_invisible", default=False, optional=True,
                    tooltip="Off (official): every keypoint enters CMP, also one not detected in the reference "
                            "or the frame; it is anchored at the image corner (0, 0) with a flow towards it. "
                            "On: only keypoints seen in both the reference and the frame drive the flow.")),
            ],
            outputs=[Flow.Output(display_name="dense_flow", tooltip="For Hybrid ControlNet Apply (and "
                                                                    "DisPose Guidance Preview).")])

    @classmethod
    def execute(cls, cmp_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
                batch_size: int, mask_invisible: bool = False) -> io.NodeOutput:
        with stage():
            bridge.load_to_device([cmp_model])
            return io.NodeOutput(pipeline.dense_motion(
                cmp_model.value, reference_image, poses, batch_size=batch_size, mask_invisible=mask_invisible,
                progress=bridge.progress_bar(poses.num_frames - 1), should_stop=bridge.should_stop))
