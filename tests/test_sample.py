"""The bundled synthetic sample."""
from __future__ import annotations

import numpy as np

from dispose_core.image import fit_to_canvas, target_size
from dispose_core.pose.keypoint_json import from_pose_keypoint
from dispose_core.sample import SKIN, make_sample


def test_shapes_canvas_and_determinism():
    s = make_sample(num_frames=6)
    assert s.reference.shape == (512, 288, 3) and s.frames.shape == (6, 512, 288, 3)
    assert s.reference.dtype == np.uint8 and s.frames.dtype == np.uint8
    assert (s.poses.height, s.poses.width) == target_size(512, 288, 256) and s.poses.num_frames == 7
    again = make_sample(num_frames=6)
    np.testing.assert_array_equal(again.frames, s.frames)
    np.testing.assert_array_equal(again.poses.body, s.poses.body)
    assert not np.array_equal(s.frames[0], s.frames[3])  # it moves
    assert len(s.pose_keypoint) == 7


def test_ground_truth_matches_the_drawing():
    s = make_sample(num_frames=4)
    h, w = s.frames.shape[1:3]
    for f in range(4):
        nose = np.round(s.poses.body[f + 1, 0] * [w, h]).astype(int)
        assert np.abs(s.frames[f][nose[1], nose[0]].astype(int) - SKIN).max() <= 2
    # reference ground truth lives on the canvas the reference image is fitted to
    canvas = fit_to_canvas(s.reference, s.poses.height, s.poses.width)
    nose = np.round(s.poses.body[0, 0] * [s.poses.width, s.poses.height]).astype(int)
    assert np.abs(canvas[nose[1], nose[0]].astype(int) - SKIN).max() <= 3


def test_pose_keypoint_round_trip():
    s = make_sample(num_frames=3)
    back = from_pose_keypoint(s.pose_keypoint, height=s.poses.height, width=s.poses.width, align=False)
    np.testing.assert_allclose(back.body, s.poses.body, atol=1e-6)
    np.testing.assert_allclose(back.hands, s.poses.hands, atol=1e-6)


def test_other_sizes():
    s = make_sample(num_frames=2, height=90, width=160, ref_height=300, ref_width=300, resolution=128)
    assert s.frames.shape == (2, 90, 160, 3) and (s.poses.height, s.poses.width) == (128, 128)
    assert np.isfinite(s.poses.body).all()
