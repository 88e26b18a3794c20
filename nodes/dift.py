"""DIFT Loader (SD 1.5) and DIFT Point Embed."""
from __future__ import annotations

import torch

from pathlib import Path

from ..dispose_core import pipeline
from ..dispose_core.errors import ModelFileError
from ..dispose_core.loading.layout import BY_KEY
from ..dispose_core.types import PoseSequence
from . import comfy_bridge as bridge
from .common import (DIFT_MODEL, POINTS, DisposeNode, model_input, model_path, poses_input, precision_input,
                     reference_input, stage, working_memory)


SINGLE_FILE = f"{bridge.CHECKPOINTS}/"  # prefix of single-file choices in the dropdown
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


def sd15_input() -> tuple:
    """Diffusers folders from models/diffusers, then single-file checkpoints from models/checkpoints."""
    options, opts = model_input("sd15", "Stable Diffusion 1.5: a diffusers folder, or a single-file "
                                        "checkpoint from models/checkpoints/ (shown as checkpoints/<file>).")
    files = [f for f in bridge.list_models(bridge.CHECKPOINTS) if f.lower().endswith(SINGLE_FILE_SUFFIXES)]
    return options + [SINGLE_FILE + f for f in files], opts


def sd15_path(choice: str) -> Path:
    """Path of the chosen SD 1.5 folder or single file; ModelFileError naming where we looked."""
    if not choice.startswith(SINGLE_FILE):
        return model_path("sd15", choice)
    name = choice[len(SINGLE_FILE):]
    found = bridge.find_model(bridge.CHECKPOINTS, name)
    if found is None:
        searched = ", ".join(bridge.folder_dirs(bridge.CHECKPOINTS)) or f"models/{bridge.CHECKPOINTS}"
        raise ModelFileError(f"SD 1.5 checkpoint '{name}' not found in {searched}. Put it into "
                             f"ComfyUI/models/{bridge.CHECKPOINTS}/ or use the diffusers folder "
                             f"{BY_KEY['sd15'].name} from {BY_KEY['sd15'].source}.")
    return Path(found)


class DIFTLoader(DisposeNode):
    DESCRIPTION = "Loads the Stable Diffusion 1.5 parts DIFT needs (UNet, VAE encoder, text encoder)."
    RETURN_TYPES = (DIFT_MODEL,)
    RETURN_NAMES = ("dift_model",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "sd15_folder": sd15_input(),
            "precision": precision_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, sd15_folder: str) -> bool:
        return True  # a missing model fails at run time with our message (where we looked, download page)

    def run(self, sd15_folder: str, precision: str) -> tuple:
        path = sd15_path(sd15_folder)
        from ..dispose_core.loading.sd15 import load_dift

        dift = load_dift(path, bridge.pick_dtype(precision))
        return (bridge.manage(dift),)


class DIFTPointEmbed(DisposeNode):
    DESCRIPTION = ("DIFT features of the reference sampled at its keypoints: one embedding per "
                   "keypoint, carried along each frame's keypoint positions.")
    RETURN_TYPES = (POINTS, "IMAGE")
    RETURN_NAMES = ("point_embeddings", "preview")
    OUTPUT_TOOLTIPS = ("For Hybrid ControlNet Apply.",
                       "Reference feature map (PCA colours) with the keypoints marked, per frame.")

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "dift_model": (DIFT_MODEL, {"tooltip": "From DIFT Loader (SD 1.5)."}),
            "reference_image": reference_input(),
            "poses": poses_input(),
            "ensemble_size": ("INT", {
                "default": pipeline.DIFT_ENSEMBLE_SIZE, "min": 1, "max": 64,
                "tooltip": "Noisy copies averaged per feature map (official 8); fewer is faster."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "tooltip": "Seed of the DIFT noise (the official code leaves it unseeded)."}),
        }}

    def run(self, dift_model: bridge.Managed, reference_image: torch.Tensor, poses: PoseSequence,
            ensemble_size: int, seed: int) -> tuple:
        with stage():
            memory = working_memory(ensemble_size, poses.height, poses.width, [dift_model])
            bridge.load_to_device([dift_model], memory)
            return pipeline.point_embeddings(
                dift_model.value, reference_image, poses, ensemble_size=ensemble_size, seed=seed,
                progress=bridge.progress_bar(ensemble_size), should_stop=bridge.should_stop)
