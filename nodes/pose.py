"""DWPose Loader and DWPose Extract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from comfy_api.latest import InputImpl, io

from ..dispose_core import pipeline
from ..dispose_core.errors import InputError
from ..dispose_core.frames import OFFICIAL_OUTPUT_FPS, SAMPLE_STRIDE, FrameSampling
from ..dispose_core.limits import MAX_RESOLUTION
from ..dispose_core.pose.people import PERSON_CHOICES
from ..dispose_core.pose.track import EMPTY_FRAMES
from ..dispose_core.types import PoseSequence, check_frame_counts
from ..dispose_core.video import KeptFrames, image_frames, video_frames
from . import comfy_bridge as bridge
from .common import DWPoseModel, PoseKeypoint, Poses, advanced, model_input, model_path, schema, stage

# fps assumed when nothing is linked to DWPose Extract's fps: a 24-47 fps clip keeps every
# sample_stride-th frame officially, and 30 fps / 2 plays at the official output rate of 15 fps.
DEFAULT_FPS = 2 * OFFICIAL_OUTPUT_FPS


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


def extract_options() -> list[io.Input]:
    """DWPose Extract's inputs added after the first release (issue 9), appended so that saved
    workflows keep their widget positions; all optional, so saved API prompts still validate."""
    return [
        io.Float.Input("fps", default=DEFAULT_FPS, min=0.01, max=1000.0, step=0.01, optional=True,
                       tooltip="Frame rate of driving_frames (an IMAGE batch): link the loader's fps output here, "
                               "or type it. The official run keeps every sample_stride x max(1, int(fps / 24))-th "
                               "frame, so a 60 fps clip keeps every 4th. A driving_video brings its own rate."),
        io.Int.Input("sample_stride", default=SAMPLE_STRIDE, min=1, max=64, optional=True,
                     tooltip="Keep every sample_stride-th driving frame (times int(fps / 24) from 48 fps on); "
                             "official 2. 1 keeps every frame of a 24-47 fps video."),
        io.Int.Input("max_frames", default=0, min=0, max=100000, optional=True,
                     tooltip="Use at most this many of the kept frames (0 = all, as officially), to try a long "
                             "clip cheaply."),
        io.Int.Input("skip_first_frames", default=0, min=0, max=100000, optional=True,
                     tooltip="Drop this many frames from the start of the video before sampling (official 0)."),
        io.Combo.Input("person", options=list(PERSON_CHOICES), default=PERSON_CHOICES[0], optional=True,
                       tooltip="official: in every image the detection with the highest score drives the "
                               "animation, and every detected person is drawn into the skeletons. "
                               "largest_tracked: the largest person, followed by box overlap, drawn alone. "
                               "by_index: the person_index-th person from the left in the reference, tracked, "
                               "drawn alone."),
        io.Int.Input("person_index", default=0, min=0, max=63, optional=True,
                     tooltip="With person by_index: 0 = the leftmost person of the reference image."),
        io.Combo.Input("empty_frames", options=list(EMPTY_FRAMES), default=EMPTY_FRAMES[0], optional=True,
                       tooltip="Frames where nobody is detected. official: DWPose's pose estimated on the whole "
                               "image is used (drawn, and it enters the motion fields). interpolate: from the "
                               "neighbouring frames. hold: repeat the last pose. POSE_KEYPOINT input carries "
                               "no whole-image pose: official interpolates there."),
        io.Boolean.Input("retarget", default=False, optional=True,
                         tooltip="Off (official): one linear fit scales and shifts the driving poses onto the "
                                 "reference. On: after it, every bone keeps the driver's direction but takes the "
                                 "reference body's length (hands and face follow), for bodies unlike the "
                                 "driver's."),
        io.Int.Input("smooth_window", default=0, min=0, max=99, optional=True,
                     tooltip="Smooth each keypoint over this many frames (odd, >= 3) against jitter; 0 = off "
                             "(official)."),
        io.Float.Input("smooth_max_shift", default=8.0, min=0.0, max=1000.0, step=0.5, optional=True,
                       tooltip="Smoothing moves no keypoint by more than this many canvas pixels, so fast real "
                               "motion is kept."),
        advanced(io.Boolean.Input(
            "fit_on_empty_frames", default=True, optional=True,
            tooltip="On (official): a frame where nobody was detected still enters the alignment fit with its "
                    "whole-image pose. Off: the fit uses only frames with a detection. DWPose path only.")),
        io.Video.Input("driving_video", optional=True,
                       tooltip="The driving video straight from LoadVideo (instead of driving_frames): only the "
                               "frames the sampling keeps are decoded, one at a time, so a long clip needs no "
                               "more memory than a short one. Its own frame rate is used (the fps input is not)."),
    ]


OPTION_DEFAULTS = {item.id: getattr(item, "default", None) for item in extract_options()}


def _driving(video, images: torch.Tensor | None, fps: float, sampling: FrameSampling) -> KeptFrames:
    """The kept driving frames of core's VIDEO or of an IMAGE batch (at ``fps``).

    A file-backed VIDEO (LoadVideo, Video Slice) is decoded from its file, kept frames only, within
    its trim window where the host has one (0.33.0); any other VIDEO (e.g. CreateVideo's) holds its
    frames already (its stream source would be a lossy re-encoding of them), so those are taken.
    """
    if video is None:
        return image_frames(images, fps, sampling)
    if not isinstance(video, InputImpl.VideoFromFile):
        components = video.get_components()
        return image_frames(components.images, float(components.frame_rate), sampling)
    start, duration = video.get_active_trim_window() if hasattr(video, "get_active_trim_window") else (0.0, 0.0)
    return video_frames(video.get_stream_source(), sampling, start_time=start, duration=duration)


class DWPoseExtract(io.ComfyNode):
    """DWPose Extract without a preview output: ComfyUI keeps every output of a node for the whole
    run, so a skeleton image per frame would cost memory even where nothing shows it (DisPose
    Guidance Preview draws them on demand)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseDWPoseExtractV2", "DWPose Extract",
            "Whole-body keypoints of the reference and of the driving frames the official run keeps, "
            "aligned to the reference body; the canvas size of the whole animation is fixed here. "
            "See them with DisPose Guidance Preview.",
            inputs=[
                io.Image.Input("reference_image", tooltip="The image of the person to animate (one image)."),
                io.Int.Input("resolution", default=pipeline.RESOLUTION, min=64, max=MAX_RESOLUTION, step=64,
                             tooltip="Short side of the generation canvas (a multiple of 64, which the sampler "
                                     "needs); the long side follows 9:16, rounded down to 64. 576 is what "
                                     "MimicMotion/DisPose were trained at; 1024 is the most the sampler runs."),
                io.Boolean.Input("align", default=True,
                                 tooltip="Scale and shift the driving poses onto the reference body "
                                         "(official behaviour). Off: use the driving poses as they are."),
                io.Image.Input("driving_frames", optional=True,
                               tooltip="Frames of the driving video as an IMAGE batch (e.g. from VideoHelperSuite). "
                                       "From core LoadVideo, connect driving_video instead: it decodes only the "
                                       "kept frames."),
                DWPoseModel.Input("dwpose_model", optional=True,
                                  tooltip="From DWPose Loader (DisPose). Not needed when pose_keypoint is connected."),
                PoseKeypoint.Input("pose_keypoint", optional=True,
                                   tooltip="Instead of running DWPose: keypoints from comfyui_controlnet_aux "
                                           "(DWPose/OpenPose estimator) - the reference pose first, then the driving "
                                           "frames; or only the driving frames when reference_pose_keypoint is "
                                           "connected. The same frame sampling applies."),
                PoseKeypoint.Input("reference_pose_keypoint", optional=True,
                                   tooltip="With pose_keypoint: the reference image's keypoints (one frame), e.g. "
                                           "the same estimator run on the reference image."),
                *extract_options(),
            ],
            outputs=[
                Poses.Output(display_name="poses", tooltip="Reference + driving poses on the generation canvas; "
                                                           "feed every DisPose node from here (DisPose Guidance "
                                                           "Preview draws them as skeletons)."),
                PoseKeypoint.Output(display_name="pose_keypoint",
                                    tooltip="The same poses in comfyui_controlnet_aux's POSE_KEYPOINT format."),
                io.Float.Output(display_name="fps",
                                tooltip="The rate the kept frames play at (fps / effective stride, 15 for a 30 or "
                                        "60 fps clip): link it to CreateVideo's fps. The official script always "
                                        "writes 15."),
            ])

    @classmethod
    def execute(cls, reference_image: torch.Tensor, resolution: int, align: bool,
                driving_frames: torch.Tensor | None = None, dwpose_model: DWPoseFiles | None = None,
                pose_keypoint: list | None = None, reference_pose_keypoint: list | None = None,
                **options) -> io.NodeOutput:
        opts = OPTION_DEFAULTS | options
        sampling = FrameSampling(opts["sample_stride"], opts["max_frames"], opts["skip_first_frames"])
        people = dict(person=opts["person"], person_index=opts["person_index"], empty_frames=opts["empty_frames"],
                      retarget=opts["retarget"], smooth_window=opts["smooth_window"],
                      smooth_max_shift=opts["smooth_max_shift"])
        with stage():
            video = opts.get("driving_video")
            if video is not None and driving_frames is not None:
                raise InputError("DWPose Extract got both driving_frames and driving_video. Connect one of them.")
            if pose_keypoint is not None:
                if video is not None or driving_frames is not None:  # connected but unused: at least it must agree
                    check_frame_counts(pose_keypoint=len(pose_keypoint) - (reference_pose_keypoint is None),
                                       driving_frames=_driving(video, driving_frames, opts["fps"],
                                                               sampling).source_frames)
                kept, fps = pipeline.select_keypoint_frames(pose_keypoint, opts["fps"], sampling,
                                                            reference_first=reference_pose_keypoint is None)
                poses = pipeline.poses_from_keypoints(
                    kept, reference_image, resolution=resolution, align=align,
                    reference_keypoint=reference_pose_keypoint, **people)
            elif dwpose_model is None or (driving_frames is None and video is None):
                raise InputError("DWPose Extract needs a driving_video (or driving_frames) and a dwpose_model "
                                 "(DWPose Loader), or a pose_keypoint input. Connect one of them.")
            else:
                frames = _driving(video, driving_frames, opts["fps"], sampling)
                fps = frames.fps
                poses = cls._detect(dwpose_model, reference_image, frames, resolution, align,
                                    fit_on_empty_frames=opts["fit_on_empty_frames"], **people)
            return io.NodeOutput(poses, pipeline.pose_keypoints(poses), fps)

    @staticmethod
    def _detect(files: DWPoseFiles, reference: torch.Tensor, frames: KeptFrames,
                resolution: int, align: bool, **options) -> PoseSequence:
        from ..dispose_core.pose.dwpose import load_dwpose

        detector = load_dwpose(files.detector, files.pose, providers=bridge.onnx_providers())
        try:
            return pipeline.extract_poses(
                detector, reference, frames, resolution=resolution, align=align, **options,
                progress=bridge.progress_bar(len(frames) + 1), should_stop=bridge.should_stop)
        finally:
            del detector
            bridge.free_memory()
