"""Which person drives the animation and is drawn, and what fills frames where DWPose finds nobody.

DWPose outputs are injected (ImagePeople per image, as tests/test_pose_extract.py does); the
expected skeleton images are the official drawing (render.draw_pose, golden-checked) of the
people each rule should show, built here from the injected keypoints.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.pose.dwpose import ImagePeople
from dispose_core.pose.frame import PoseFrame
from dispose_core.pose.render import draw_pose, render_poses
from test_pose_extract import FRAME_HW, REF_HW, image, person, run

H, W = REF_HW
NORM = np.array([FRAME_HW[1], FRAME_HW[0]], np.float64)
# person A: left, small, listed first by the detector (highest box score); person B: right, larger
A = person(5, 10, 40, 60, seed=11)
B = person(90, 5, 150, 88, seed=12)
REF_A, REF_B = person(2, 20, 30, 90, seed=13), person(36, 5, 70, 125, seed=14)


def drawn(*people) -> np.ndarray:
    """The official skeleton image of exactly these people (pixel keypoints of a driving frame)."""
    frame = ImagePeople(np.stack([p[0] for p in people]), np.stack([p[1] for p in people]),
                        np.stack([p[2] for p in people]), *FRAME_HW).frame()
    return draw_pose(frame, H, W)


def columns(img: np.ndarray, x0: float, x1: float) -> bool:
    """Anything drawn between frame x0..x1 (pixels of the driving frame) on the canvas."""
    return bool(img[:, int(x0 / FRAME_HW[1] * W):int(np.ceil(x1 / FRAME_HW[1] * W))].any())


def two_people_video(**kw):
    frames = [image(FRAME_HW, A, B), image(FRAME_HW, A, B)]
    return run(image(REF_HW, REF_A, REF_B), frames, align=False, **kw)


def test_official_takes_the_first_detection_and_draws_everyone(caplog):
    with caplog.at_level(logging.WARNING):
        poses, _ = two_people_video()
    np.testing.assert_allclose(poses.body[0], REF_A[1][:18] / [W, H], rtol=1e-6)
    np.testing.assert_allclose(poses.body[1], A[1][:18] / NORM, rtol=1e-6)  # drives flows, CMP, DIFT
    skeletons = render_poses(poses)
    np.testing.assert_array_equal(skeletons[1], drawn(A, B))
    assert columns(skeletons[1], 5, 40) and columns(skeletons[1], 90, 150)
    assert "shows 2 people" in poses.note and "highest detector score" in poses.note
    assert poses.note in caplog.text


def test_largest_tracked_draws_only_the_tracked_person():
    poses, _ = two_people_video(person="largest_tracked")
    np.testing.assert_allclose(poses.body[0], REF_B[1][:18] / [W, H], rtol=1e-6)
    np.testing.assert_allclose(poses.body[1], B[1][:18] / NORM, rtol=1e-6)
    skeletons = render_poses(poses)
    np.testing.assert_array_equal(skeletons[1], drawn(B))
    assert not columns(skeletons[1], 0, 45) and columns(skeletons[1], 90, 150)
    assert "largest person" in poses.note


@pytest.mark.parametrize("index, ref, drv", [(0, REF_A, A), (1, REF_B, B)])
def test_by_index_counts_from_the_left(index, ref, drv):
    # the detector lists B first here, so the index must follow position, not detector order
    frames = [image(FRAME_HW, B, A), image(FRAME_HW, A, B)]
    poses, _ = run(image(REF_HW, REF_B, REF_A), frames, align=False, person="by_index", person_index=index)
    np.testing.assert_allclose(poses.body[0], ref[1][:18] / [W, H], rtol=1e-6)
    np.testing.assert_allclose(poses.body[1:], np.stack([drv[1][:18] / NORM] * 2), rtol=1e-6)
    np.testing.assert_array_equal(render_poses(poses)[2], drawn(drv))
    assert f"person {index} from the left" in poses.note


def test_one_person_reference_has_no_note_and_bad_index_is_an_input_error():
    poses, _ = run(image(REF_HW, REF_A), [image(FRAME_HW, A)], align=False)
    assert poses.note == ""
    with pytest.raises(InputError, match="person_index is 2, but the reference image shows 2 person"):
        two_people_video(person="by_index", person_index=2)
    with pytest.raises(InputError, match="Unknown person choice"):
        two_people_video(person="tallest")


# ---------------------------------------------------------------- empty frames
P1, P5 = person(10, 10, 50, 80, seed=21), person(60, 5, 100, 85, seed=22)
WHOLE = [person(0, 0, 160, 90, score=0.6, seed=30 + k) for k in range(3)]  # whole-image estimates


def leaving_video(empty: str):
    """The person is there in driving frames 0-1 and 5-6 and gone in 2-4 (sequence 3-5)."""
    gone = [ImagePeople(np.zeros((0, 4)), w[1][None], w[2][None], *FRAME_HW) for w in WHOLE]
    frames = [image(FRAME_HW, P1), image(FRAME_HW, P1)] + gone + [image(FRAME_HW, P5), image(FRAME_HW, P5)]
    poses, _ = run(image(REF_HW, REF_A), frames, align=False, empty_frames=empty)
    return poses, render_poses(poses)


def test_empty_frames_official_uses_the_whole_image_pose():
    poses, skeletons = leaving_video("official")
    assert poses.filled_frames == (3, 4, 5)
    for k, w in enumerate(WHOLE):
        np.testing.assert_allclose(poses.body[3 + k], w[1][:18] / NORM, rtol=1e-6)
        np.testing.assert_array_equal(skeletons[3 + k], drawn(w))


def test_empty_frames_interpolate():
    poses, skeletons = leaving_video("interpolate")
    a, b = P1[1] / NORM, P5[1] / NORM
    assert poses.filled_frames == (3, 4, 5)
    for k, t in enumerate((0.25, 0.5, 0.75)):
        expected = a + (b - a) * t
        np.testing.assert_allclose(poses.body[3 + k], expected[:18], rtol=1e-5)
        person_t = {"body": expected[:18], "body_score": np.full(18, 0.9),
                    "hands": np.stack([expected[92:113], expected[113:134]]), "hands_score": np.full((2, 21), 0.9),
                    "faces": expected[24:92], "faces_score": np.full(68, 0.9)}
        np.testing.assert_array_equal(skeletons[3 + k], draw_pose(PoseFrame.from_people([person_t]), H, W))


def test_empty_frames_hold_repeats_the_last_pose():
    poses, skeletons = leaving_video("hold")
    assert poses.filled_frames == (3, 4, 5)
    for k in range(3):
        np.testing.assert_allclose(poses.body[3 + k], P1[1][:18] / NORM, rtol=1e-6)
        np.testing.assert_array_equal(skeletons[3 + k], drawn(P1))


def test_hold_before_the_first_person_takes_the_first_pose():
    gone = ImagePeople(np.zeros((0, 4)), WHOLE[0][1][None], WHOLE[0][2][None], *FRAME_HW)
    poses, _ = run(image(REF_HW, REF_A), [gone, image(FRAME_HW, P1)], align=False, empty_frames="hold")
    np.testing.assert_allclose(poses.body[1], P1[1][:18] / NORM, rtol=1e-6)


@pytest.mark.parametrize("empty", ["official", "interpolate", "hold"])
def test_nobody_in_any_frame_names_the_frames(empty):
    with pytest.raises(InputError, match=r"any of the 3 driving frames \(0-based frames 0-2\)"):
        run(image(REF_HW, REF_A), [image(FRAME_HW)] * 3, empty_frames=empty)


def test_preview_outlines_the_chosen_reference_person_only_when_there_are_several():
    import torch

    from dispose_core import pipeline

    poses, _ = two_people_video()
    skeletons = torch.from_numpy(render_poses(poses)).float() / 255
    canvas = max(poses.height, poses.width)  # a preview as large as the canvas: comparable with render_poses
    marked = (pipeline.skeleton_preview(poses, canvas) * 255).round().to(torch.uint8).numpy()
    changed = np.argwhere((marked[0] != (skeletons[0] * 255).round().numpy()).any(-1))
    pts = REF_A[1][:18]  # person A, taken officially: its body points on the reference canvas (pixels)
    assert changed[:, 1].min() >= pts[:, 0].min() - 5 and changed[:, 1].max() <= pts[:, 0].max() + 6
    assert changed[:, 0].min() >= pts[:, 1].min() - 5 and changed[:, 0].max() <= pts[:, 1].max() + 6
    assert (marked[0][tuple(changed.T)] == 255).all() and (marked[1:] == (skeletons[1:] * 255).round().numpy()).all()
    single, _ = run(image(REF_HW, REF_A), [image(FRAME_HW, A)], align=False)
    assert torch.equal((pipeline.skeleton_preview(single, max(single.height, single.width)) * 255).round(),
                       torch.from_numpy(render_poses(single)).float())


def test_by_index_beyond_the_video_people_takes_the_largest_there():
    frames = [image(FRAME_HW, A, B), image(FRAME_HW, B)]  # index 2 exists only in the reference
    three = person(60, 10, 71, 60, seed=15)
    poses, _ = run(image(REF_HW, REF_A, REF_B, three), frames, align=False, person="by_index", person_index=2)
    np.testing.assert_allclose(poses.body[0], three[1][:18] / [W, H], rtol=1e-6)
    np.testing.assert_allclose(poses.body[1:], np.stack([B[1][:18] / NORM] * 2), rtol=1e-6)


# ---------------------------------------------------------------- POSE_KEYPOINT follows the same rules
def keypoint_person(x0: float, x1: float, seed: int) -> tuple[dict, dict]:
    """An OpenPose-JSON person with 18 found body points inside x0..x1 of a 64 x 96 canvas, and the
    same person as normalised arrays (hands and face absent)."""
    rng = np.random.default_rng(seed)
    body = np.stack([rng.uniform(x0, x1, 18), rng.uniform(10, 90, 18)], -1)
    triples = np.concatenate([body, np.ones((18, 1))], 1).ravel().tolist()
    arrays = {"body": body / [64, 96], "body_score": np.ones(18), "hands": np.zeros((2, 21, 2)),
              "hands_score": np.zeros((2, 21)), "faces": np.zeros((68, 2)), "faces_score": np.zeros(68)}
    return {"pose_keypoints_2d": triples}, arrays


def test_pose_keypoint_official_draws_both_largest_tracked_one():
    from dispose_core.pose.keypoint_json import from_pose_keypoint

    (left, left_arrays), (right, right_arrays) = keypoint_person(2, 20, 1), keypoint_person(28, 62, 2)
    frame = {"people": [left, right], "canvas_width": 64, "canvas_height": 96}
    data = [frame, frame, frame]
    official = from_pose_keypoint(data, height=96, width=64, align=False)
    np.testing.assert_allclose(official.body[1], left_arrays["body"], atol=1e-6)
    np.testing.assert_array_equal(render_poses(official)[1],
                                  draw_pose(PoseFrame.from_people([left_arrays, right_arrays]), 96, 64))
    assert "shows 2 people" in official.note
    tracked = from_pose_keypoint(data, height=96, width=64, align=False, person="largest_tracked")
    np.testing.assert_allclose(tracked.body[1], right_arrays["body"], atol=1e-6)
    np.testing.assert_array_equal(render_poses(tracked)[1], draw_pose(PoseFrame.from_people([right_arrays]), 96, 64))
