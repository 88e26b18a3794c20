"""Skeleton rendering: pixel-exact against the official draw_pose (G5c), and the sequence API."""
from __future__ import annotations

import numpy as np

from dispose_core.pose.frame import PoseFrame
from dispose_core.pose.render import draw_pose, render_poses
from dispose_core.types import PoseSequence
from golden import golden_params, require

FRAME_KEYS = {"candidate": "bodies_candidate", "subset": "bodies_subset", "score": "bodies_score",
              "hands": "hands", "hands_score": "hands_score", "faces": "faces", "faces_score": "faces_score"}


def frame_from(tensors: dict, prefix: str = "") -> PoseFrame:
    return PoseFrame(**{k: tensors[prefix + v].numpy() for k, v in FRAME_KEYS.items()})


def assert_image_equal(got_hwc: np.ndarray, expected_chw: np.ndarray) -> None:
    expected = np.asarray(expected_chw).transpose(1, 2, 0)
    diff = np.abs(got_hwc.astype(int) - expected.astype(int))
    assert diff.max() == 0, f"{int((diff > 0).any(-1).sum())} pixels differ (max {diff.max()})"


@golden_params("G5c")
def test_draw_pose_golden(golden_name):
    case = require(golden_name)
    h, w = (int(v) for v in case.tensors["size_hw"])
    got = draw_pose(frame_from(case.tensors), h, w)
    assert_image_equal(got, case.tensors["pose_image"].numpy())


def one_person_sequence(frames: int, height: int, width: int, seed: int = 0) -> PoseSequence:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.2, 1.0, (frames, 18)).astype(np.float32)
    return PoseSequence(
        body=rng.uniform(0.1, 0.9, (frames, 18, 2)).astype(np.float32),
        body_score=score,
        body_subset=np.where(score > 0.3, np.arange(18), -1).astype(np.float32),
        hands=rng.uniform(0.1, 0.9, (frames, 2, 21, 2)).astype(np.float32),
        hands_score=rng.uniform(0, 1, (frames, 2, 21)).astype(np.float32),
        faces=rng.uniform(0.1, 0.9, (frames, 68, 2)).astype(np.float32),
        faces_score=rng.uniform(0, 1, (frames, 68)).astype(np.float32),
        height=height, width=width)


def test_render_poses_equals_per_frame_draw_and_reuses_nothing_stale():
    poses = one_person_sequence(3, 64, 48)
    images = render_poses(poses)
    assert images.shape == (3, 64, 48, 3) and images.dtype == np.uint8
    for f in range(3):
        np.testing.assert_array_equal(images[f], draw_pose(PoseFrame.from_sequence(poses, f), 64, 48))
    assert images[0].any() and not np.array_equal(images[0], images[1])


def test_invisible_everything_renders_black():
    poses = one_person_sequence(1, 40, 40)
    poses.body_score[:] = 0.0
    poses.body_subset[:] = -1
    poses.hands[:] = 0.0
    poses.faces[:] = 0.0
    assert not render_poses(poses).any()


def test_red_and_blue_are_swapped_like_the_official_canvas():
    # one limb (neck -> right shoulder, colour table entry 0 = pure red) fully confident
    poses = one_person_sequence(1, 432, 432)  # 5x below the 2160 canvas: strokes survive the resize
    poses.body_score[:] = 0.0
    poses.body_subset[:] = -1
    poses.body_score[0, [1, 2]] = 1.0
    poses.body_subset[0, [1, 2]] = [1, 2]
    poses.body[0, 1], poses.body[0, 2] = (0.3, 0.5), (0.7, 0.5)
    poses.hands[:] = 0.0
    poses.faces[:] = 0.0
    img = render_poses(poses)[0].reshape(-1, 3)
    lit = img[img.any(1)]
    assert len(lit) > 0 and lit[:, 0].max() == 0 and lit[:, 2].max() > 0


def test_points_outside_the_frame_and_canvas_reuse_on_non_square_sizes():
    poses = one_person_sequence(3, 90, 160, seed=4)
    poses.body[0] = poses.body[0] * 3 - 1  # many points far outside, some limbs crossing the frame
    poses.hands[0] -= 0.5
    poses.body_score[1:] = 0.0  # later frames: nothing visible at all
    poses.body_subset[1:] = -1
    poses.hands[1:] = 0.0
    poses.faces[1:] = 0.0
    images = render_poses(poses)
    assert images.shape == (3, 90, 160, 3) and images[0].any()
    assert not images[1:].any()  # nothing of frame 0 is left on the reused canvas
