"""Stage previews are drawn at a capped size (``pipeline.PREVIEW_LONG_SIDE``), whatever the canvas:
they are for looking at, and full-canvas float32 previews of a long video cost gigabytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dispose_core import pipeline
from dispose_core.image import preview_size
from dispose_core.pose.frame import PoseFrame
from dispose_core.pose.render import draw_pose
from motion_fixtures import make_poses, random_poses


@pytest.mark.parametrize("size,long_side,expected", [
    ((576, 1024), 256, (144, 256)), ((1024, 576), 256, (256, 144)), ((100, 50), 256, (100, 50)),
    ((3, 1000), 256, (1, 256)), ((768, 1344), 256, (146, 256)),
])
def test_preview_size(size, long_side, expected):
    assert preview_size(*size, long_side) == expected


def test_stage_previews_are_capped_on_a_large_canvas():
    poses = random_poses(4, 512, 320, seed=1)  # a 256 px cap halves it: 256 x 160
    motion, motion_preview = pipeline.sparse_motion(poses, kernel_size=21, sigma=5.0)
    assert pipeline.PREVIEW_LONG_SIDE == 256
    assert motion_preview.shape == (3, 256, 160, 3) and motion_preview.dtype == torch.float32
    assert motion.fields(0, 1).shape == (1, 2, 512, 320)  # the field itself stays at the canvas
    skeletons = pipeline.skeleton_preview(poses)
    assert skeletons.shape == (4, 256, 160, 3) and skeletons.max() > 0


def test_skeleton_preview_is_the_pose_drawn_at_the_preview_size():
    poses = random_poses(2, 400, 200, seed=3, invisible=0.0)
    skeletons = pipeline.skeleton_preview(poses)
    expected = draw_pose(PoseFrame.from_sequence(poses, 1), 256, 128)
    assert torch.equal(skeletons[1], torch.from_numpy(expected).float() / 255.0)


def test_person_outline_follows_the_preview_size():
    body = np.full((2, 18, 2), 0.5, np.float32)
    body[:, :, 0] = np.linspace(0.25, 0.75, 18)  # x from 25% to 75% of the width, all at mid height
    poses = make_poses(body, np.tile(np.arange(18, dtype=np.float32), (2, 1)), 400, 400)
    poses.note = "two people, took the left one"
    outlined = pipeline.person_preview(torch.zeros(2, 100, 100, 3), poses)  # a 100 px preview of a 400 px canvas
    white = (outlined[0] == 1).all(-1).nonzero()
    # box around x 25..75, y 50 with a 4 px margin, in preview pixels
    assert white[:, 1].min() == 21 and white[:, 1].max() == 79
    assert white[:, 0].min() == 46 and white[:, 0].max() == 54
    assert outlined[1].max() == 0
