"""MimicMotion Loader, DisPose ControlNet Loader, Hybrid ControlNet Apply, MimicMotion Sampler."""
from __future__ import annotations

import dataclasses
import logging

import torch

from ..dispose_core import pipeline
from ..dispose_core.types import DenseFlow, MotionField, PointEmbeddings, PoseSequence
from . import comfy_bridge as bridge
from .common import (CONTROL, DISPOSE_CONTROLNET, FLOW, MIMICMOTION_MODEL, MOTION, POINTS, DisposeNode,
                     model_input, model_path, poses_input, precision_input, reference_input, stage, working_memory)

log = logging.getLogger(__name__)
_DEFAULTS = pipeline.SamplerSettings()
_CONTROL = pipeline.ControlInputs(None, None, None)  # for the default strengths


class MimicMotionLoader(DisposeNode):
    DESCRIPTION = "Loads SVD xt 1.1 (VAE, image encoder, UNet) with MimicMotion's UNet and PoseNet weights."
    RETURN_TYPES = (MIMICMOTION_MODEL,)
    RETURN_NAMES = ("mimicmotion_model",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "svd_folder": model_input("svd", "Stable Video Diffusion img2vid xt 1.1 in diffusers format (a folder)."),
            "mimicmotion_checkpoint": model_input("mimicmotion", "MimicMotion 1.1 weights (UNet + PoseNet)."),
            "precision": precision_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, svd_folder: str, mimicmotion_checkpoint: str) -> bool:
        return True  # a missing file fails at run time with our message (file, folder, download page)

    def run(self, svd_folder: str, mimicmotion_checkpoint: str, precision: str) -> tuple:
        svd, weights = model_path("svd", svd_folder), model_path("mimicmotion", mimicmotion_checkpoint)
        from ..dispose_core.loading.mimicmotion import load_mimicmotion

        models = load_mimicmotion(svd, weights, bridge.pick_dtype(precision))
        return (bridge.manage(models),)


class DisPoseControlNetLoader(DisposeNode):
    DESCRIPTION = ("Builds DisPose's hybrid ControlNet from the MimicMotion UNet and loads DisPose.pth "
                   "over it (motion encoder, point adapters, ControlNet trunk).")
    RETURN_TYPES = (DISPOSE_CONTROLNET,)
    RETURN_NAMES = ("dispose_controlnet",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "mimicmotion_model": (MIMICMOTION_MODEL, {"tooltip": "From MimicMotion Loader: the ControlNet "
                                                                 "starts as a copy of its UNet encoder."}),
            "dispose_checkpoint": model_input("dispose", "DisPose ControlNet weights."),
            "precision": precision_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, dispose_checkpoint: str) -> bool:
        return True  # a missing file fails at run time with our message (file, folder, download page)

    def run(self, mimicmotion_model: bridge.Managed, dispose_checkpoint: str, precision: str) -> tuple:
        path = model_path("dispose", dispose_checkpoint)
        from ..dispose_core.loading.dispose import load_dispose_controlnet

        controlnet, report = load_dispose_controlnet(path, mimicmotion_model.value.unet, bridge.pick_dtype(precision))
        log.info("DisPose ControlNet: %s", report)
        return (bridge.manage(controlnet),)


class HybridControlNetApply(DisposeNode):
    DESCRIPTION = ("Combines DisPose's motion field guidance (sparse + dense) and keypoint correspondence "
                   "into the control the MimicMotion Sampler applies.")
    RETURN_TYPES = (CONTROL,)
    RETURN_NAMES = ("control",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        def strength(default: float, tip: str) -> tuple:
            return ("FLOAT", {"default": default, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip": tip})

        def percent(default: float, tip: str) -> tuple:
            return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": tip})

        return {"required": {
            "dispose_controlnet": (DISPOSE_CONTROLNET, {"tooltip": "From DisPose ControlNet Loader."}),
            "motion_field": (MOTION, {"tooltip": "From Sparse Motion Field."}),
            "dense_flow": (FLOW, {"tooltip": "From CMP Dense Flow."}),
            "point_embeddings": (POINTS, {"tooltip": "From DIFT Point Embed."}),
            "strength": strength(_CONTROL.strength, "Scale of all ControlNet residuals (0 = no DisPose)."),
            "motion_strength": strength(_CONTROL.motion_strength,
                                        "Scale of the motion field guidance; 0 = the paper's 'w/o motion'."),
            "point_strength": strength(_CONTROL.point_strength,
                                       "Scale of the keypoint correspondence; 0 = the paper's 'w/o point'."),
            "start_percent": percent(_CONTROL.start_percent, "Fraction of the steps after which control starts."),
            "end_percent": percent(_CONTROL.end_percent, "Fraction of the steps after which control stops."),
        }}

    def run(self, dispose_controlnet: bridge.Managed, motion_field: MotionField, dense_flow: DenseFlow,
            point_embeddings: PointEmbeddings, strength: float, motion_strength: float,
            point_strength: float, start_percent: float, end_percent: float) -> tuple:
        return (pipeline.hybrid_control(
            dispose_controlnet, motion_field, dense_flow, point_embeddings, strength=strength,
            motion_strength=motion_strength, point_strength=point_strength, start_percent=start_percent,
            end_percent=end_percent),)


class MimicMotionSampler(DisposeNode):
    DESCRIPTION = ("Animates the reference image along the poses with MimicMotion (optionally guided by "
                   "DisPose), in overlapping tiles of frames; returns the driving frames only.")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("One generated frame per driving frame (the reference frame is dropped).",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        d = _DEFAULTS
        return {
            "required": {
                "mimicmotion_model": (MIMICMOTION_MODEL, {"tooltip": "From MimicMotion Loader."}),
                "reference_image": reference_input(),
                "poses": poses_input(),
                "seed": ("INT", {"default": d.seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Seed of the initial noise."}),
                "steps": ("INT", {"default": d.steps, "min": 1, "max": 200, "tooltip": "Denoising steps."}),
                "min_guidance": ("FLOAT", {"default": d.min_guidance, "min": 0.0, "max": 20.0, "step": 0.1,
                                           "tooltip": "Classifier-free guidance at the first frame of a tile."}),
                "max_guidance": ("FLOAT", {"default": d.max_guidance, "min": 0.0, "max": 20.0, "step": 0.1,
                                           "tooltip": "Guidance at the last frame of a tile (linear in between)."}),
                "noise_aug": ("FLOAT", {"default": d.noise_aug, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "Noise added to the reference latent (0 = official)."}),
                "fps": ("INT", {"default": d.fps, "min": 1, "max": 60,
                                "tooltip": "Frame-rate conditioning of SVD (the model sees fps - 1)."}),
                "motion_bucket_id": ("INT", {"default": d.motion_bucket_id, "min": 0, "max": 1023,
                                             "tooltip": "SVD motion conditioning; higher = more motion."}),
                "tile_size": ("INT", {"default": d.tile_size, "min": 2, "max": 128,
                                      "tooltip": "Frames per tile incl. the reference (memory grows with it)."}),
                "overlap": ("INT", {"default": d.overlap, "min": 0, "max": 127,
                                    "tooltip": "Frames shared by neighbouring tiles (blended)."}),
                "decode_chunk_size": ("INT", {"default": d.decode_chunk_size, "min": 1, "max": 128,
                                              "tooltip": "Frames decoded together by the VAE (memory vs speed)."}),
            },
            "optional": {
                "control": (CONTROL, {"tooltip": "From Hybrid ControlNet Apply; leave empty for plain MimicMotion."}),
            },
        }

    def run(self, mimicmotion_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
            control: pipeline.ControlInputs | None = None, **settings) -> tuple:
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
            return (frames.to(bridge.intermediate_device()),)
