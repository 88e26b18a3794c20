"""Stage previews are drawn at a capped size (``pipeline.PREVIEW_LONG_SIDE``), whatever the canvas:
they are for looking at, and full-canvas float32 previews of a long video cost gigabytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dispose_core import pipeline
from dispose_core.dift.embeddings import build_point_embeddings
from dispose_core.dift.preview import correspondence_picture
from dispose_core.errors import InputError
from dispose_core.image import preview_size
from dispose_core.pose.frame import PoseFrame
from dispose_core.pose.render import draw_pose
from dispose_core.types import MotionField, PointEmbeddings
from motion_fixtures import make_poses, random_poses


@pytest.mark.parametrize("size,long_side,expected", [
    ((576, 1024), 256, (144, 256)), ((1024, 576), 256, (256, 144)), ((100, 50), 256, (100, 50)),
    ((3, 1000), 256, (1, 256)), ((768, 1344), 256, (146, 256)),
])
def test_preview_size(size, long_side, expected):
    assert preview_size(*size, long_side) == expected


def test_stage_previews_are_capped_on_a_large_canvas():
    poses = random_poses(4, 512, 320, seed=1)  # a 256 px cap halves it: 256 x 160
    motion = pipeline.sparse_motion(poses, kernel_size=21, sigma=5.0)
    assert isinstance(motion, MotionField)  # the stage returns its data only, no preview
    motion_preview = pipeline.field_preview(motion)
    assert pipeline.PREVIEW_LONG_SIDE == 256
    assert motion_preview.shape == (3, 256, 160, 3) and motion_preview.dtype == torch.float32
    assert motion.fields(0, 1).shape == (1, 2, 512, 320)  # the field itself stays at the canvas
    skeletons = pipeline.skeleton_preview(poses)
    assert skeletons.shape == (4, 256, 160, 3) and skeletons.max() > 0


@pytest.mark.parametrize("long_side,expected", [(64, (64, 40)), (1024, (512, 320)), (512, (512, 320))])
def test_previews_take_a_long_side_but_never_exceed_the_canvas(long_side, expected):
    poses = random_poses(3, 512, 320, seed=2)
    assert pipeline.skeleton_preview(poses, long_side).shape == (3, *expected, 3)
    motion = pipeline.sparse_motion(poses, kernel_size=21, sigma=5.0)
    assert pipeline.field_preview(motion, long_side).shape == (2, *expected, 3)


def test_skeleton_preview_is_the_pose_drawn_at_the_preview_size():
    poses = random_poses(2, 400, 200, seed=3, invisible=0.0)
    skeletons = pipeline.skeleton_preview(poses)
    expected = draw_pose(PoseFrame.from_sequence(poses, 1), 256, 128)
    assert torch.equal(skeletons[1], torch.from_numpy(expected).float() / 255.0)


def test_person_outline_follows_the_preview_size():
    body = np.full((2, 18, 2), 0.5, np.float32)
    body[:, :, 0] = np.linspace(0.25, 0.75, 18)  # x from 25% to 75% of the width, all at mid height
    poses = make_poses(body, np.tile(np.arange(18, dtype=np.float32), (2, 1)), 400, 400)
    plain = pipeline.skeleton_preview(poses, 100)  # a 100 px preview of a 400 px canvas
    poses.note = "two people, took the left one"
    outlined = pipeline.skeleton_preview(poses, 100)
    changed = (outlined[0] != plain[0]).any(-1).nonzero()
    # box around x 25..75, y 50 with a 4 px margin, in preview pixels, drawn in white
    assert changed[:, 1].min() == 21 and changed[:, 1].max() == 79
    assert changed[:, 0].min() == 46 and changed[:, 0].max() == 54
    assert (outlined[0][changed[:, 0], changed[:, 1]] == 1).all()
    assert torch.equal(outlined[1], plain[1])


def _points_with_picture(height: int, width: int) -> PointEmbeddings:
    """Embeddings of 3 frames of random poses on a height x width canvas with a picture at the preview size."""
    poses = random_poses(3, height, width, seed=4, invisible=0.0)
    feature = torch.randn(1, 8, height // 16, width // 16, generator=torch.Generator().manual_seed(0))
    small = np.full((*preview_size(height, width, pipeline.PREVIEW_LONG_SIDE), 3), 200, np.uint8)
    points = build_point_embeddings(feature, poses)
    points.picture = correspondence_picture(feature, poses, small)
    return points


def test_points_preview_draws_on_the_stored_picture_at_most():
    points = _points_with_picture(512, 320)
    assert points.picture.pca_map.shape == (256, 160, 3) and points.picture.pca_map.dtype == np.uint8
    preview = pipeline.points_preview(points)
    assert preview.shape == (3, 256, 160, 3) and preview.dtype == torch.float32
    assert pipeline.points_preview(points, 1024).shape == (3, 256, 160, 3)  # no more than the stored picture
    assert pipeline.points_preview(points, 128).shape == (3, 128, 80, 3)
    assert (preview[1, 0, 0] * 255).round().tolist() == [70, 70, 70]  # the reference (200) dimmed to 35 %
    points.picture = None
    with pytest.raises(InputError, match="DIFT Point Embed"):
        pipeline.points_preview(points)
