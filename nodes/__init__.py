"""The DisPose node classes by id, with their display names (ComfyUI's V1 registration)."""
from __future__ import annotations

from .comfy_bridge import register_model_folders
from .dift import DIFTLoader, DIFTPointEmbed
from .mimicmotion import DisPoseControlNetLoader, HybridControlNetApply, MimicMotionLoader, MimicMotionSampler
from .motion import CMPDenseFlow, CMPLoader, SparseMotionField
from .pose import DWPoseExtract, DWPoseLoader

_NODES = (
    ("DisPoseDWPoseLoader", DWPoseLoader, "DWPose Loader (DisPose)"),
    ("DisPoseDWPoseExtract", DWPoseExtract, "DWPose Extract"),
    ("DisPoseSparseMotionField", SparseMotionField, "Sparse Motion Field"),
    ("DisPoseCMPLoader", CMPLoader, "CMP Loader (DisPose)"),
    ("DisPoseCMPDenseFlow", CMPDenseFlow, "CMP Dense Flow"),
    ("DisPoseDIFTLoader", DIFTLoader, "DIFT Loader (SD 1.5)"),
    ("DisPoseDIFTPointEmbed", DIFTPointEmbed, "DIFT Point Embed"),
    ("DisPoseControlNetLoader", DisPoseControlNetLoader, "DisPose ControlNet Loader"),
    ("DisPoseHybridControlNetApply", HybridControlNetApply, "Hybrid ControlNet Apply"),
    ("DisPoseMimicMotionLoader", MimicMotionLoader, "MimicMotion Loader"),
    ("DisPoseMimicMotionSampler", MimicMotionSampler, "MimicMotion Sampler"),
)

NODE_CLASS_MAPPINGS = {node_id: cls for node_id, cls, _ in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, _, name in _NODES}

register_model_folders()
