"""MimicMotion Loader, DisPose ControlNet Loader, Hybrid ControlNet Apply, MimicMotion Sampler."""
from __future__ import annotations

import dataclasses
import logging

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.types import DenseFlow, MotionField, PointEmbeddings, PoseSequence
from . import comfy_bridge as bridge
from .common import (SEED_MAX, Control, DisPoseControlNet, Flow, MimicMotionModel, Motion, Points, model_input,
                     model_path, poses_input, precision_input, reference_input, schema, stage, working_memory)

log = logging.getLogger(__name__)
_DEFAULTS = pipeline.SamplerSettings()
_CONTROL = pipeline.ControlInputs(None, None, None)  # for the default strengths


def _strength(name: str, default: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=10.0, step=0.05, tooltip=tooltip)


def _percent(name: str, default: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


class MimicMotionLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionLoader", "MimicMotion Loader",
            "Loads SVD xt 1.1 (VAE, image encoder, UNet) with MimicMotion's UNet and PoseNet weights.",
            inputs=[model_input("svd_folder", "svd",
                                "Stable Video Diffusion img2vid xt 1.1 in diffusers format (a folder)."),
                    model_input("mimicmotion_checkpoint", "mimicmotion", "MimicMotion 1.1 weights (UNet + PoseNet)."),
                    precision_input()],
            outputs=[MimicMotionModel.Output(display_name="mimicmotion_model",
                                             tooltip="For DisPose ControlNet Loader and MimicMotion Sampler.")])

    @classmethod
    def validate_inputs(cls, svd_folder: str, mimicmotion_checkpoint: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, svd_folder: str, mimicmotion_checkpoint: str, precision: str) -> io.NodeOutput:
        svd, weights = model_path("svd", svd_folder), model_path("mimicmotion", mimicmotion_checkpoint)
        from ..dispose_core.loading.mimicmotion import load_mimicmotion

        return io.NodeOutput(bridge.manage(load_mimicmotion(svd, weights, bridge.pick_dtype(precision))))


class DisPoseControlNetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseControlNetLoader", "DisPose ControlNet Loader",
            "Builds DisPose's hybrid ControlNet from the MimicMotion UNet and loads DisPose.pth "
            "over it (motion encoder, point adapters, ControlNet trunk).",
            inputs=[MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader: the ControlNet "
                                                                        "starts as a copy of its UNet encoder."),
                    model_input("dispose_checkpoint", "dispose", "DisPose ControlNet weights."),
                    precision_input()],
            outputs=[DisPoseControlNet.Output(display_name="dispose_controlnet",
                                              tooltip="For Hybrid ControlNet Apply.")])

    @classmethod
    def validate_inputs(cls, dispose_checkpoint: str) -> bool:
        """Accept names that are not in the dropdown: a missing file fails at run time with our
        message (file, folders searched, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, mimicmotion_model: bridge.Managed, dispose_checkpoint: str, precision: str) -> io.NodeOutput:
        path = model_path("dispose", dispose_checkpoint)
        from ..dispose_core.loading.dispose import load_dispose_controlnet

        controlnet, report = load_dispose_controlnet(path, mimicmotion_model.value.unet, bridge.pick_dtype(precision))
        log.info("DisPose ControlNet: %s", report)
        return io.NodeOutput(bridge.manage(controlnet))


class HybridControlNetApply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        c = _CONTROL
        return schema(
            "DisPoseHybridControlNetApply", "Hybrid ControlNet Apply",
            "Combines DisPose's motion field guidance (sparse + dense) and keypoint correspondence "
            "into the control the MimicMotion Sampler applies.",
            inputs=[
                DisPoseControlNet.Input("dispose_controlnet", tooltip="From DisPose ControlNet Loader."),
                Motion.Input("motion_field", tooltip="From Sparse Motion Field."),
                Flow.Input("dense_flow", tooltip="From CMP Dense Flow."),
                Points.Input("point_embeddings", tooltip="From DIFT Point Embed."),
                _strength("strength", c.strength, "Scale of all ControlNet residuals (0 = no DisPose)."),
                _strength("motion_strength", c.motion_strength,
                          "Scale of the motion field guidance; 0 = the paper's 'w/o motion'."),
                _strength("point_strength", c.point_strength,
                          "Scale of the keypoint correspondence; 0 = the paper's 'w/o point'."),
                _percent("start_percent", c.start_percent, "Fraction of the steps after which control starts."),
                _percent("end_percent", c.end_percent, "Fraction of the steps after which control stops."),
            ],
            outputs=[Control.Output(display_name="control", tooltip="For the MimicMotion Sampler's control input.")])

    @classmethod
    def execute(cls, dispose_controlnet: bridge.Managed, motion_field: MotionField, dense_flow: DenseFlow,
                point_embeddings: PointEmbeddings, strength: float, motion_strength: float,
                point_strength: float, start_percent: float, end_percent: float) -> io.NodeOutput:
        return io.NodeOutput(pipeline.hybrid_control(
            dispose_controlnet, motion_field, dense_flow, point_embeddings, strength=strength,
            motion_strength=motion_strength, point_strength=point_strength, start_percent=start_percent,
            end_percent=end_percent))


class MimicMotionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = _DEFAULTS
        return schema(
            "DisPoseMimicMotionSampler", "MimicMotion Sampler",
            "Animates the reference image along the poses with MimicMotion (optionally guided by "
            "DisPose), in overlapping tiles of frames; returns the driving frames only.",
            inputs=[
                MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader."),
                reference_input(),
                poses_input(),
                io.Int.Input("seed", default=d.seed, min=0, max=SEED_MAX, tooltip="Seed of the initial noise."),
                io.Int.Input("steps", default=d.steps, min=1, max=200, tooltip="Denoising steps."),
                io.Float.Input("min_guidance", default=d.min_guidance, min=0.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance at the first frame of a tile."),
                io.Float.Input("max_guidance", default=d.max_guidance, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance at the last frame of a tile (linear in between)."),
                io.Float.Input("noise_aug", default=d.noise_aug, min=0.0, max=1.0, step=0.01,
                               tooltip="Noise added to the reference latent (0 = official)."),
                io.Int.Input("fps", default=d.fps, min=1, max=60,
                             tooltip="Frame-rate conditioning of SVD (the model sees fps - 1)."),
                io.Int.Input("motion_bucket_id", default=d.motion_bucket_id, min=0, max=1023,
                             tooltip="SVD motion conditioning; higher = more motion."),
                io.Int.Input("tile_size", default=d.tile_size, min=2, max=128,
                             tooltip="Frames per tile incl. the reference (memory grows with it)."),
                io.Int.Input("overlap", default=d.overlap, min=0, max=127,
                             tooltip="Frames shared by neighbouring tiles (blended)."),
                io.Int.Input("decode_chunk_size", default=d.decode_chunk_size, min=1, max=128,
                             tooltip="Frames decoded together by the VAE (memory vs speed)."),
                Control.Input("control", optional=True,
                              tooltip="From Hybrid ControlNet Apply; leave empty for plain MimicMotion."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="One generated frame per driving frame "
                                                                    "(the reference frame is dropped).")])

    @classmethod
    def execute(cls, mimicmotion_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
                control: pipeline.ControlInputs | None = None, **settings) -> io.NodeOutput:
        settings = pipeline.SamplerSettings(**settings)
        with stage():
            models = [mimicmotion_model] + ([control.controlnet] if control is not None else [])
            cfg_batch = 2 * settings.tile_size  # a tile's frames, conditional and unconditional
            bridge.load_to_device(models, working_memory(cfg_batch, poses.height, poses.width, models))
            if control is not None:  # the sampler wants the ControlNet itself, not its ComfyUI wrapper
                control = dataclasses.replace(control, controlnet=control.controlnet.value)
            frames = pipeline.animate(
                mimicmotion_model.value, reference_image, poses, control=control, settings=settings,
                progress=bridge.progress_bar(), should_stop=bridge.should_stop)
            return io.NodeOutput(frames.to(bridge.intermediate_device()))
