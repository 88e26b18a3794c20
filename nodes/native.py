"""The nodes of the native path: MimicMotion's MODEL with core KSampler / SamplerCustomAdvanced.

MimicMotion Conditioning (reference + poses -> CONDITIONING + LATENT), Apply DisPose Control and
MimicMotion Tiles (MODEL -> MODEL clones), the official noise, sampler and sigmas for
SamplerCustomAdvanced, and MimicMotion Decode (LATENT -> frames with the pack's or core's VAE).
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.errors import InputError
from ..dispose_core.sampling.conditioning import draw_noise, periodic_initial_latents
from ..dispose_core.types import PoseSequence
from . import comfy_bridge as bridge
from . import comfy_native as native
from .common import Control, MimicMotionModel, poses_input, reference_input, schema, stage
from .mimicmotion import (MimicMotionUnits, batch_quirk_input, conditioning_inputs, decode_phase, encode_phase,
                          noise_device_input, noise_generator, seed_input, tile_inputs)

_DEFAULTS = pipeline.SamplerSettings()


def _model_input() -> io.Model.Input:
    return io.Model.Input("model", tooltip="The MODEL output of MimicMotion Loader (or a clone of it).")


class MimicMotionConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionConditioning", "MimicMotion Conditioning",
            "Encodes the reference image (SVD image encoder + VAE) and attaches the poses: positive / negative "
            "conditioning and the empty video latent for a core sampler with MimicMotion's MODEL.",
            inputs=[MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader (its image "
                                                                        "encoder and VAE, ours or core's)."),
                    reference_input(), poses_input(), *conditioning_inputs(),
                    seed_input("Seed of the noise augmentation draw (the official run draws it first from the "
                               "sampling seed: use the same seed as MimicMotion Noise / the sampler)."),
                    noise_device_input()],
            outputs=[io.Conditioning.Output(display_name="positive"),
                     io.Conditioning.Output(display_name="negative",
                                            tooltip="Zero embedding, reference latent and poses (official "
                                                    "unconditional half)."),
                     io.Latent.Output(display_name="latent", tooltip="Empty video latent: one frame per pose, "
                                                                     "the reference pose first.")])

    @classmethod
    def execute(cls, mimicmotion_model: MimicMotionUnits, reference_image: torch.Tensor, poses: PoseSequence,
                noise_aug: float, fps: int, motion_bucket_id: int, seed: int,
                noise_device: str = "official") -> io.NodeOutput:
        settings = pipeline.SamplerSettings(seed=seed, noise_aug=noise_aug, fps=fps, motion_bucket_id=motion_bucket_id)
        with stage():
            plan = pipeline.animation_plan(reference_image, poses, settings=settings,
                                           generator=noise_generator(noise_device, seed))
            encoded = encode_phase(mimicmotion_model, plan)
            positive, negative = native.conditioning(encoded.embedding, encoded.latent, plan.poses, fps,
                                                     motion_bucket_id, noise_aug)
            return io.NodeOutput(positive, negative, native.empty_latent(plan.num_frames, *plan.size))


class ApplyDisPoseControl(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseApplyControl", "Apply DisPose Control",
            "Attaches DisPose's hybrid ControlNet (motion field + keypoints) to a copy of MimicMotion's MODEL: it "
            "runs in every tile call of any sampler, within its start/end percent of the steps.",
            inputs=[_model_input(), Control.Input("control", tooltip="From Hybrid ControlNet Apply.")],
            outputs=[io.Model.Output(display_name="model")])

    @classmethod
    def execute(cls, model, control: pipeline.ControlInputs) -> io.NodeOutput:
        native.require_mimicmotion(model, "Apply DisPose Control")
        return io.NodeOutput(native.with_control(model, control))


class MimicMotionTiles(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionTiles", "MimicMotion Tiles",
            "Sets how a copy of MimicMotion's MODEL splits the video inside each model call: tiles of tile_size "
            "frames, each with the reference frame, blended over the overlap (official: 16 and 6).",
            inputs=[_model_input(), *tile_inputs(), batch_quirk_input()],
            outputs=[io.Model.Output(display_name="model")])

    @classmethod
    def execute(cls, model, tile_size: int, overlap: int, official_batch_quirk: bool = True) -> io.NodeOutput:
        native.require_mimicmotion(model, "MimicMotion Tiles")
        return io.NodeOutput(native.with_batch_quirk(native.with_tiles(model, tile_size, overlap),
                                                     official_batch_quirk))


class OfficialNoise:
    """A NOISE for SamplerCustomAdvanced drawing what the official pipeline draws: the noise
    augmentation draw first, then one tile of frames repeated over the video."""

    def __init__(self, seed: int, tile_size: int, generator: torch.Generator):
        self.seed, self.tile_size, self.generator = seed, tile_size, generator

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        frames, _, h, w = samples.shape
        gen = self.generator.manual_seed(int(self.seed))
        tile = min(self.tile_size, frames)
        init = draw_noise(gen, h * 8, w * 8, tile).init
        return periodic_initial_latents(init, frames, torch.tensor(1.0))[0].cpu()


class MimicMotionNoise(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionNoise", "MimicMotion Noise",
            "The official run's initial noise for SamplerCustomAdvanced (periodic over tile_size frames).",
            inputs=[seed_input(), io.Int.Input("tile_size", default=_DEFAULTS.tile_size, min=2, max=128,
                                               tooltip="The tile size the MODEL samples with (MimicMotion Tiles)."),
                    noise_device_input()],
            outputs=[io.Noise.Output(display_name="noise")])

    @classmethod
    def execute(cls, seed: int, tile_size: int, noise_device: str = "official") -> io.NodeOutput:
        return io.NodeOutput(OfficialNoise(seed, tile_size, noise_generator(noise_device, seed)))


class MimicMotionEuler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionEuler", "MimicMotion Euler",
            "The official Euler step (the MimicMotion Sampler's) as a SAMPLER for SamplerCustomAdvanced.",
            inputs=[], outputs=[io.Sampler.Output(display_name="sampler")])

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(native.OFFICIAL_EULER)


class MimicMotionScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionScheduler", "MimicMotion Scheduler",
            "The official sigmas (Karras 700 -> 0.002, computed in float64 as diffusers does) for "
            "SamplerCustomAdvanced.",
            inputs=[io.Int.Input("steps", default=_DEFAULTS.steps, min=1, max=200, tooltip="Denoising steps.")],
            outputs=[io.Sigmas.Output(display_name="sigmas")])

    @classmethod
    def execute(cls, steps: int) -> io.NodeOutput:
        from ..dispose_core.sampling.schedule import karras_sigmas

        return io.NodeOutput(karras_sigmas(steps))


class MimicMotionDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseMimicMotionDecode", "MimicMotion Decode",
            "Decodes a video LATENT (MimicMotion Sampler or a core sampler) with the loader's VAE, decode_chunk_size "
            "frames at a time as officially; drops the reference frame like the sampler.",
            inputs=[MimicMotionModel.Input("mimicmotion_model", tooltip="From MimicMotion Loader (its VAE)."),
                    io.Latent.Input("latent"),
                    io.Int.Input("decode_chunk_size", default=_DEFAULTS.decode_chunk_size, min=1, max=128,
                                 tooltip="Frames decoded together by the VAE (memory vs speed)."),
                    io.Boolean.Input("keep_reference_frame", default=False,
                                     tooltip="Keep frame 0, the reconstructed reference.")],
            outputs=[io.Image.Output(display_name="frames")])

    @classmethod
    def execute(cls, mimicmotion_model: MimicMotionUnits, latent: dict, decode_chunk_size: int,
                keep_reference_frame: bool) -> io.NodeOutput:
        samples = latent["samples"]
        if samples.ndim != 4 or samples.shape[1] != 4:
            raise InputError(f"MimicMotion Decode takes an SVD video latent (frames, 4, h, w), got "
                             f"{tuple(samples.shape)}.")
        with stage():
            latents = native.model_latents(mimicmotion_model.denoiser.patcher, samples)
            frames = decode_phase(mimicmotion_model, latents, decode_chunk_size,
                                  keep_reference_frame=keep_reference_frame)
            return io.NodeOutput(frames.to(bridge.intermediate_device()))  # already an IMAGE batch: no copy
