"""Issue 16: the stage nodes without preview outputs, DisPose Guidance Preview, and the legacy
nodes (first-release ids, with previews) that saved workflows still use. In-process with ComfyUI on
the tiny models, wired as the example workflows wire them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from host_utils import call_node, guidance_graph, model_dirs

pytestmark = pytest.mark.comfy
RESOLUTION = 64


@pytest.fixture(scope="module")
def legacy(tiny_models_dir):
    """The graph through the legacy nodes, previews included (host_utils.guidance_graph)."""
    with model_dirs(tiny_models_dir):
        yield guidance_graph(num_frames=9, resolution=RESOLUTION)


@pytest.fixture(scope="module")
def current(tiny_models_dir, legacy):
    """The same graph through the nodes without previews."""
    ref = legacy["reference"]
    out = {}
    with model_dirs(tiny_models_dir):
        out["extract"] = call_node("DisPoseDWPoseExtractV2", reference_image=ref, resolution=RESOLUTION, align=True,
                                   pose_keypoint=legacy["keypoints_in"], sample_stride=1)
        poses = out["extract"][0]
        out["motion"] = call_node("DisPoseSparseMotionFieldV2", poses=poses, kernel_size=199, sigma=20.0)
        out["flow"] = call_node("DisPoseCMPDenseFlowV2", cmp_model=legacy["cmp"], reference_image=ref, poses=poses,
                                batch_size=4)
        (dift,) = call_node("DisPoseDIFTLoader", sd15_folder="stable-diffusion-v1-5", precision="fp32")
        out["points"] = call_node("DisPoseDIFTPointEmbedV2", dift_model=dift, reference_image=ref, poses=poses,
                                  ensemble_size=1, seed=0)
    return out


def test_stage_nodes_return_their_data_and_no_image(current, legacy):
    poses, keypoints, fps = current["extract"]
    assert np.array_equal(poses.body, legacy["poses"].body) and keypoints == legacy["keypoints"]
    assert fps == legacy["fps"] == 30.0  # sample_stride 1 keeps the default 30 fps
    for name in ("extract", "motion", "flow", "points"):
        assert not any(isinstance(x, torch.Tensor) for x in current[name]), name
    assert [len(current[n]) for n in ("motion", "flow", "points")] == [1, 1, 1]
    assert torch.equal(current["motion"][0].fields(), legacy["motion"].fields())
    assert torch.equal(current["flow"][0].fields(), legacy["flow"].fields())
    assert torch.equal(current["points"][0].ref_point_emb, legacy["points"].ref_point_emb)


@pytest.mark.parametrize("name, legacy_preview", [("poses", "skeletons"), ("motion_field", "motion_preview"),
                                                  ("dense_flow", "flow_preview"),
                                                  ("point_embeddings", "points_preview")])
def test_preview_node_draws_what_the_legacy_output_showed(current, legacy, name, legacy_preview):
    data = {"poses": current["extract"][0], "motion_field": current["motion"][0], "dense_flow": current["flow"][0],
            "point_embeddings": current["points"][0]}[name]
    (preview,) = call_node("DisPoseGuidancePreview", long_side=256, **{name: data})
    assert preview.dtype == torch.float32 and torch.equal(preview, legacy[legacy_preview])
    frames = legacy["poses"].num_frames - (name in ("motion_field", "dense_flow"))  # flows: one per driving frame
    assert preview.shape == (frames, 64, 64, 3)  # the 64 px canvas: the 256 px cap does not enlarge it


def test_preview_long_side_shrinks_and_never_exceeds_the_canvas(current):
    poses = current["extract"][0]
    assert call_node("DisPoseGuidancePreview", long_side=1024, poses=poses)[0].shape[1:3] == (64, 64)
    (points,) = current["points"]
    assert call_node("DisPoseGuidancePreview", long_side=1024, point_embeddings=points)[0].shape[1:3] == (64, 64)
    # below the canvas: the skeletons are drawn at that size (not scaled down), the picture is resized
    small = call_node("DisPoseGuidancePreview", long_side=64, motion_field=current["motion"][0])[0]
    assert small.shape == (poses.num_frames - 1, 64, 64, 3)


def test_dift_preview_shows_the_dimmed_reference_behind_the_points(current, legacy):
    """Independent of the drawing code: away from the keypoints, a driving frame of the preview is
    the reference on the canvas at 35 % brightness (truncated to uint8, as dift/preview.py says)."""
    from dispose_core.image import fit_to_canvas

    (points,) = current["points"]
    (preview,) = call_node("DisPoseGuidancePreview", long_side=256, point_embeddings=points)
    reference = (fit_to_canvas(legacy["reference"][0], 64, 64) * 255).round()
    dimmed = (reference * 0.35).floor()
    shown = (preview[1] * 255).round()
    assert (shown == dimmed).all(-1).float().mean() > 0.5  # most of the frame is background
    assert points.picture.pca_map.shape == (64, 64, 3) and points.picture.pca_map.dtype == np.uint8
