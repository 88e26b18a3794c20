"""DIFT Loader (SD 1.5) and DIFT Point Embed."""
from __future__ import annotations

from pathlib import Path

import torch
from comfy_api.latest import io

from ..dispose_core import pipeline
from ..dispose_core.types import PoseSequence
from . import comfy_bridge as bridge
from .common import (SEED_MAX, DIFTModel, Points, advanced, folder_or_single_file_input, folder_or_single_file_path,
                     poses_input, precision_input, reference_input, schema, stage, working_memory)


def sd15_input() -> io.Combo.Input:
    """Diffusers folders from models/diffusers, then single-file checkpoints from models/checkpoints."""
    return folder_or_single_file_input("sd15_folder", "sd15", "Stable Diffusion 1.5: a diffusers folder, or a "
                                                              "single-file checkpoint.", (".safetensors", ".ckpt"))


def sd15_path(choice: str) -> Path:
    """Path of the chosen SD 1.5 folder or single file; ModelFileError naming where we looked."""
    return folder_or_single_file_path("sd15", choice, "SD 1.5 checkpoint")


class DIFTLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseDIFTLoader", "DIFT Loader (SD 1.5)",
            "Loads the Stable Diffusion 1.5 parts DIFT needs (UNet, VAE encoder, text encoder).",
            inputs=[sd15_input(), precision_input()],
            outputs=[DIFTModel.Output(display_name="dift_model", tooltip="For DIFT Point Embed.")])

    @classmethod
    def validate_inputs(cls, sd15_folder: str) -> bool:
        """Accept names that are not in the dropdown: a missing model fails at run time with our
        message (where we looked, download page) instead of ComfyUI's 'value not in list'."""
        return True

    @classmethod
    def execute(cls, sd15_folder: str, precision: str) -> io.NodeOutput:
        path = sd15_path(sd15_folder)
        from ..dispose_core.loading.sd15 import load_dift

        return io.NodeOutput(bridge.manage(load_dift(path, bridge.pick_dtype(precision))))


class DIFTPointEmbed(io.ComfyNode):
    """Without a preview output, which ComfyUI would keep for the whole run even where nothing
    shows it; the embeddings carry one small picture of the reference's feature map instead, from
    which DisPose Guidance Preview draws every frame on demand."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            "DisPoseDIFTPointEmbedV2", "DIFT Point Embed",
            "DIFT features of the reference sampled at its keypoints: one embedding per "
            "keypoint, carried along each frame's keypoint positions. See them with DisPose Guidance Preview.",
            inputs=[
                DIFTModel.Input("dift_model", tooltip="From DIFT Loader (SD 1.5)."),
                reference_input(),
                poses_input(),
                io.Int.Input("ensemble_size", default=pipeline.DIFT_ENSEMBLE_SIZE, min=1, max=64,
                             tooltip="Noisy copies averaged per feature map (official 8); fewer is faster."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX,
                             tooltip="Seed of the DIFT noise (the official code leaves it unseeded)."),
                advanced(io.Boolean.Input(
                    "natural_orientation", default=False, optional=True,
                    tooltip="Off (official): the keypoints are read from the feature map upsampled with its "
                            "height and width swapped (the official code unpacks the image size as w, h); "
                            "the trained DisPose weights saw these embeddings. On: read the H x W map as "
                            "intended. Both agree on square canvases.")),
            ],
            outputs=[Points.Output(display_name="point_embeddings", tooltip="For Hybrid ControlNet Apply (and "
                                                                            "DisPose Guidance Preview).")])

    @classmethod
    def execute(cls, dift_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
                ensemble_size: int, seed: int, natural_orientation: bool = False) -> io.NodeOutput:
        with stage():
            memory = working_memory(ensemble_size, poses.height, poses.width, [dift_model])
            bridge.load_to_device([dift_model], memory)
            return io.NodeOutput(pipeline.point_embeddings(
                dift_model.value, reference_image, poses, ensemble_size=ensemble_size, seed=seed,
                natural_orientation=natural_orientation,
                progress=bridge.progress_bar(ensemble_size), should_stop=bridge.should_stop))
