"""The stage nodes as first released, with their preview IMAGE outputs, kept so that saved UI and
API workflows load and run unchanged.

Each is the current node (same inputs and data outputs, its schema and ``execute`` called as they
are) plus the preview output in its old place, drawn by the function DisPose Guidance Preview uses,
at its default size. They are marked deprecated, so the frontend hides them from search: new graphs
use the nodes without previews, which hold no images nothing shows.

Composition, not subclassing the current node: ComfyUI caches a node's return types and flags on
its class the first time it reads the schema, and a subclass would inherit the current node's.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from comfy_api.latest import io

from .dift import DIFTPointEmbed
from .motion import CMPDenseFlow, SparseMotionField
from .pose import DWPoseExtract
from .previews import DRAWERS

PREVIEW_SLOT = 1  # every legacy preview output came right after the data output
KEPT = (" Kept for saved workflows: the node without it, with DisPose Guidance Preview, holds no images unless "
        "one is shown.")


class LegacyStageNode(io.ComfyNode):
    """A first-release stage node: ``CURRENT`` plus a preview output (not registered itself)."""

    CURRENT: ClassVar[type[io.ComfyNode]]
    NODE_ID: ClassVar[str]  # the first-release id saved workflows name
    GUIDANCE: ClassVar[str]  # which ``DRAWERS`` entry draws the data output
    PREVIEW_NAME: ClassVar[str] = "preview"
    PREVIEW_TOOLTIP: ClassVar[str]

    @classmethod
    def define_schema(cls) -> io.Schema:
        current = cls.CURRENT.define_schema()
        outputs = list(current.outputs)
        outputs.insert(PREVIEW_SLOT, io.Image.Output(display_name=cls.PREVIEW_NAME, tooltip=cls.PREVIEW_TOOLTIP + KEPT))
        return dataclasses.replace(current, node_id=cls.NODE_ID, is_deprecated=True, outputs=outputs,
                                   display_name=f"{current.display_name} (legacy, with preview)")

    @classmethod
    def execute(cls, **inputs: Any) -> io.NodeOutput:
        args = list(cls.CURRENT.execute(**inputs).args)
        args.insert(PREVIEW_SLOT, DRAWERS[cls.GUIDANCE](args[0]))
        return io.NodeOutput(*args)


class DWPoseExtractLegacy(LegacyStageNode):
    CURRENT, NODE_ID, GUIDANCE, PREVIEW_NAME = DWPoseExtract, "DisPoseDWPoseExtract", "poses", "skeletons"
    PREVIEW_TOOLTIP = ("Rendered skeletons, one per frame (reference first), at most 256 pixels long (a preview: the "
                       "sampler draws its own at the canvas size); when the reference shows several people, the one "
                       "animated is outlined.")


class SparseMotionFieldLegacy(LegacyStageNode):
    CURRENT, NODE_ID, GUIDANCE = SparseMotionField, "DisPoseSparseMotionField", "motion_field"
    PREVIEW_TOOLTIP = "The field as colours, one image per driving frame, at most 256 pixels long (a preview)."


class CMPDenseFlowLegacy(LegacyStageNode):
    CURRENT, NODE_ID, GUIDANCE = CMPDenseFlow, "DisPoseCMPDenseFlow", "dense_flow"
    PREVIEW_TOOLTIP = "The flow as colours, one image per driving frame, at most 256 pixels long (a preview)."


class DIFTPointEmbedLegacy(LegacyStageNode):
    CURRENT, NODE_ID, GUIDANCE = DIFTPointEmbed, "DisPoseDIFTPointEmbed", "point_embeddings"
    PREVIEW_TOOLTIP = ("Reference feature map (PCA colours) with the keypoints marked, per frame, at most 256 pixels "
                       "long.")


LEGACY_NODES: tuple[type[io.ComfyNode], ...] = (DWPoseExtractLegacy, SparseMotionFieldLegacy, CMPDenseFlowLegacy,
                                                DIFTPointEmbedLegacy)
