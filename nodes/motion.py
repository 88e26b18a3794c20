"""Sparse Motion Field, CMP Loader (DisPose) and CMP Dense Flow."""
from __future__ import annotations

import torch

from ..dispose_core import pipeline
from ..dispose_core.types import PoseSequence
from . import comfy_bridge as bridge
from .common import (CMP_MODEL, FLOW, MOTION, DisposeNode, model_input, model_path, poses_input,
                     precision_input, reference_input, stage)

class SparseMotionField(DisposeNode):
    DESCRIPTION = ("Keypoint displacements between consecutive frames, splatted on the canvas and "
                   "Gaussian-smoothed (DisPose's sparse motion field).")
    RETURN_TYPES = (MOTION, "IMAGE")
    RETURN_NAMES = ("motion_field", "preview")
    OUTPUT_TOOLTIPS = ("For Hybrid ControlNet Apply.", "The field as colours, one image per driving frame.")

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "poses": poses_input(),
            "kernel_size": ("INT", {
                "default": pipeline.SPARSE_KERNEL_SIZE, "min": 1, "max": 999, "step": 2,
                "tooltip": "Gaussian kernel size in pixels (odd; official 199)."}),
            "sigma": ("FLOAT", {
                "default": pipeline.SPARSE_SIGMA, "min": 0.1, "max": 200.0, "step": 0.1,
                "tooltip": "Gaussian sigma in pixels (official 20)."}),
        }}

    def run(self, poses: PoseSequence, kernel_size: int, sigma: float) -> tuple:
        return pipeline.sparse_motion(poses, kernel_size=kernel_size, sigma=sigma)


class CMPLoader(DisposeNode):
    DESCRIPTION = "Loads CMP (conditional motion propagation), which turns sparse flow into dense flow."
    RETURN_TYPES = (CMP_MODEL,)
    RETURN_NAMES = ("cmp_model",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "cmp_checkpoint": model_input("cmp", "CMP checkpoint (resnet50_vip+mpii_liteflow)."),
            "precision": precision_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, cmp_checkpoint: str) -> bool:
        return True  # a missing file fails at run time with our message (file, folder, download page)

    def run(self, cmp_checkpoint: str, precision: str) -> tuple:
        path = model_path("cmp", cmp_checkpoint)
        from ..dispose_core.motion.cmp import load_cmp

        cmp = load_cmp(path, bridge.pick_dtype(precision))
        return (bridge.manage(cmp),)


class CMPDenseFlow(DisposeNode):
    DESCRIPTION = "Propagates each frame's keypoint motion over the whole reference image with CMP."
    RETURN_TYPES = (FLOW, "IMAGE")
    RETURN_NAMES = ("dense_flow", "preview")
    OUTPUT_TOOLTIPS = ("For Hybrid ControlNet Apply.", "The flow as colours, one image per driving frame.")

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "cmp_model": (CMP_MODEL, {"tooltip": "From CMP Loader (DisPose)."}),
            "reference_image": reference_input(),
            "poses": poses_input(),
            "batch_size": ("INT", {
                "default": pipeline.CMP_BATCH_SIZE, "min": 1, "max": 256,
                "tooltip": ("Frames per CMP forward pass; lower it if memory runs out. On a CPU, "
                            "1-2 is fastest.")}),
        }}

    def run(self, cmp_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
            batch_size: int) -> tuple:
        with stage():
            bridge.load_to_device([cmp_model])
            return pipeline.dense_motion(
                cmp_model.value, reference_image, poses, batch_size=batch_size,
                progress=bridge.progress_bar(poses.num_frames - 1), should_stop=bridge.should_stop)
