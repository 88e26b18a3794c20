"""DWPose Loader and DWPose Extract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.errors import InputError
from ..dispose_core.types import check_frame_counts
from . import comfy_bridge as bridge
from .common import DWPoseModel, PoseKeypoint, Poses, model_input, model_path, schema, stage


@dataclass(frozen=True)
class DWPoseFiles:
    """The two ONNX files (ComfyUI type ``DWPOSE_MODEL``).

    onnxruntime sessions are opened by DWPose Extract and dropped when it finishes: a session
    cached as a node output would keep its CUDA memory arena while the sampler runs.
    """

    detector: Path
    pose: Path


class DWPoseLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseDWPoseLoader", "DWPose Loader (DisPose)",
            "Finds the DWPose ONNX models (YOLOX person detector + whole-body pose estimator).",
            inputs=[model_input("detector", "dwpose_detector", "Person detector (YOLOX-L ONNX)."),
                    model_input("pose_model", "dwpose_pose", "Whole-body pose estimator (DWPose ONNX).")],
            outputs=[DWPoseModel.Output(display_name="dwpose_model",
                                        tooltip="The two ONNX files, for DWPose Extract.")])

    @classmethod
    def validate_inputs(cls, detector: str, pose_model: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, detector: str, pose_model: str) -> io.NodeOutput:
        return io.NodeOutput(DWPoseFiles(model_path("dwpose_detector", detector),
                                         model_path("dwpose_pose", pose_model)))


class DWPoseExtract(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseDWPoseExtract", "DWPose Extract",
            "Whole-body keypoints of the reference and of every driving frame, aligned to the "
            "reference body; the canvas size of the whole animation is fixed here.",
            inputs=[
                io.Image.Input("reference_image", tooltip="The image of the person to animate (one image)."),
                io.Int.Input("resolution", default=pipeline.RESOLUTION, min=64, max=2048, step=64,
                             tooltip="Short side of the generation canvas (a multiple of 64, which the sampler "
                                     "needs); the long side follows 9:16, rounded down to 64. 576 is what "
                                     "MimicMotion/DisPose were trained at."),
                io.Boolean.Input("align", default=True,
                                 tooltip="Scale and shift the driving poses onto the reference body "
                                         "(official behaviour). Off: use the driving poses as they are."),
                io.Image.Input("driving_frames", optional=True,
                               tooltip="Frames of the driving video (an IMAGE batch, "
                                       "e.g. from LoadVideo + Get Video Components)."),
                DWPoseModel.Input("dwpose_model", optional=True,
                                  tooltip="From DWPose Loader (DisPose). Not needed when pose_keypoint is connected."),
                PoseKeypoint.Input("pose_keypoint", optional=True,
                                   tooltip="Instead of running DWPose: keypoints from comfyui_controlnet_aux "
                                           "(DWPose/OpenPose estimator) - the reference pose first, then the driving "
                                           "frames; or only the driving frames when reference_pose_keypoint is "
                                           "connected."),
                PoseKeypoint.Input("reference_pose_keypoint", optional=True,
                                   tooltip="With pose_keypoint: the reference image's keypoints (one frame), e.g. "
                                           "the same estimator run on the reference image."),
            ],
            outputs=[
                Poses.Output(display_name="poses", tooltip="Reference + driving poses on the generation canvas; "
                                                           "feed every DisPose node from here."),
                io.Image.Output(display_name="skeletons", tooltip="Rendered skeletons, one per frame (reference first)."),
                PoseKeypoint.Output(display_name="pose_keypoint",
                                    tooltip="The same poses in comfyui_controlnet_aux's POSE_KEYPOINT format."),
            ])

    @classmethod
    def execute(cls, reference_image: torch.Tensor, resolution: int, align: bool,
                driving_frames: torch.Tensor | None = None, dwpose_model: DWPoseFiles | None = None,
                pose_keypoint: list | None = None, reference_pose_keypoint: list | None = None) -> io.NodeOutput:
        with stage():
            if pose_keypoint is not None:
                poses, skeletons = pipeline.poses_from_keypoints(
                    pose_keypoint, reference_image, resolution=resolution, align=align,
                    reference_keypoint=reference_pose_keypoint)
                if driving_frames is not None:  # connected but unused: at least it must agree
                    check_frame_counts(pose_keypoint=poses.num_frames, driving_frames=driving_frames.shape[0] + 1)
            elif dwpose_model is None or driving_frames is None:
                raise InputError("DWPose Extract needs driving_frames and a dwpose_model (DWPose Loader), "
                                 "or a pose_keypoint input. Connect one of them.")
            else:
                poses, skeletons = cls._detect(dwpose_model, reference_image, driving_frames, resolution, align)
            return io.NodeOutput(poses, skeletons, pipeline.pose_keypoints(poses))

    @staticmethod
    def _detect(files: DWPoseFiles, reference: torch.Tensor, frames: torch.Tensor,
                resolution: int, align: bool) -> tuple:
        from ..dispose_core.pose.dwpose import load_dwpose

        detector = load_dwpose(files.detector, files.pose, providers=bridge.onnx_providers())
        try:
            return pipeline.extract_poses(
                detector, reference, frames, resolution=resolution, align=align,
                progress=bridge.progress_bar(frames.shape[0] + 1), should_stop=bridge.should_stop)
        finally:
            del detector
            bridge.free_memory()
