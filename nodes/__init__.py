"""The DisPose nodes, registered with ComfyUI as one V3 extension."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .comfy_bridge import register_model_folders
from .dift import DIFTLoader, DIFTPointEmbed
from .legacy import LEGACY_NODES
from .mimicmotion import DisPoseControlNetLoader, HybridControlNetApply, MimicMotionLoader, MimicMotionSampler
from .motion import CMPDenseFlow, CMPLoader, SparseMotionField
from .native import (ApplyDisPoseControl, MimicMotionConditioning, MimicMotionDecode, MimicMotionEuler, MimicMotionNoise,
                     MimicMotionScheduler, MimicMotionTiles)
from .pose import DWPoseExtract, DWPoseLoader
from .previews import GuidancePreview

NODES: tuple[type[io.ComfyNode], ...] = (
    DWPoseLoader, DWPoseExtract, SparseMotionField, CMPLoader, CMPDenseFlow, DIFTLoader, DIFTPointEmbed,
    GuidancePreview, DisPoseControlNetLoader, HybridControlNetApply, MimicMotionLoader, MimicMotionSampler,
    MimicMotionConditioning, ApplyDisPoseControl, MimicMotionTiles, MimicMotionNoise, MimicMotionEuler,
    MimicMotionScheduler, MimicMotionDecode, *LEGACY_NODES,  # the first-release stage nodes, for saved workflows
)


class DisPoseExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


register_model_folders()
