"""POSE_KEYPOINT (comfyui_controlnet_aux OpenPose JSON) export/import."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.image import cover_crop
from dispose_core.pose.keypoint_json import from_pose_keypoint, to_pose_keypoint
from test_pose_render import one_person_sequence


def test_export_format_matches_controlnet_aux():
    poses = one_person_sequence(3, 96, 64)
    data = to_pose_keypoint(poses)
    json.dumps(data)  # plain JSON types only
    assert len(data) == 3 and data[0]["canvas_width"] == 64 and data[0]["canvas_height"] == 96
    person = data[1]["people"][0]
    body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
    assert len(person["face_keypoints_2d"]) == 70 * 3 and len(person["hand_left_keypoints_2d"]) == 21 * 3
    visible = poses.body_subset[1] >= 0
    np.testing.assert_allclose(body[visible, :2], poses.body[1][visible] * [64, 96], rtol=1e-6)
    assert set(body[visible, 2]) == {1.0} and not body[~visible].any()


# One frame as comfyui_controlnet_aux's DWPose Estimator writes it, typed out by hand: pixel
# coordinates of a 64 x 96 canvas, c = 1.0 for a found point and 0, 0, 0 otherwise, a null part
# when nothing of it was found. Coordinates are multiples of 1/32 of the canvas, so exact in float32.
BODY_PX = [32.0, 12.0, 1.0,  32.0, 24.0, 1.0,  24.0, 24.0, 1.0,  0.0, 0.0, 0.0,  0.0, 0.0, 0.0,
           40.0, 24.0, 1.0,  0.0, 0.0, 0.0,  0.0, 0.0, 0.0,  26.0, 54.0, 1.0,  26.0, 72.0, 1.0,
           26.0, 90.0, 1.0,  38.0, 54.0, 1.0,  38.0, 72.0, 1.0,  38.0, 90.0, 1.0,  30.0, 9.0, 1.0,
           34.0, 9.0, 1.0,  0.0, 0.0, 0.0,  0.0, 0.0, 0.0]
LEFT_HAND_PX = [v for i in range(21) for v in (16.0 + i, 48.0, 1.0)]
AUX_FRAME = {"people": [{"pose_keypoints_2d": BODY_PX, "face_keypoints_2d": None,
                         "hand_left_keypoints_2d": LEFT_HAND_PX, "hand_right_keypoints_2d": None}],
             "canvas_width": 64, "canvas_height": 96}


def test_controlnet_aux_sample_imports_and_exports_unchanged():
    poses = from_pose_keypoint([AUX_FRAME, AUX_FRAME], height=96, width=64, align=False)
    assert poses.num_frames == 2 and (poses.height, poses.width) == (96, 64) and poses.filled_frames == ()
    found = [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15]
    assert sorted(np.flatnonzero(poses.body_subset[1] >= 0)) == found
    np.testing.assert_array_equal(poses.body[1, 0], [0.5, 0.125])  # (32 / 64, 12 / 96)
    np.testing.assert_array_equal(poses.body[1, 10], [26 / 64, 90 / 96])
    np.testing.assert_allclose(poses.hands[1, 0, 20], [36 / 64, 0.5], rtol=1e-6)
    assert (poses.hands_score[1, 0] >= 0.3).all() and not poses.hands_score[1, 1].any()
    assert not poses.faces_score[1].any()

    person = to_pose_keypoint(poses)[1]["people"][0]
    assert person["pose_keypoints_2d"] == BODY_PX
    np.testing.assert_allclose(person["hand_left_keypoints_2d"], LEFT_HAND_PX, rtol=1e-6)
    assert person["hand_right_keypoints_2d"] is None and person["face_keypoints_2d"] is None


def frame(points: dict[int, tuple[float, float]], w: int, h: int, extra_people: list | None = None) -> dict:
    body = [0.0] * 54
    for j, (x, y) in points.items():
        body[3 * j:3 * j + 3] = [x, y, 1.0]
    people = [{"pose_keypoints_2d": body, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
               "hand_right_keypoints_2d": None}] + (extra_people or [])
    return {"people": people, "canvas_width": w, "canvas_height": h}


def test_normalised_and_pixel_inputs_agree_and_reference_follows_canvas_fit():
    pts = {0: (0.5, 0.1), 1: (0.5, 0.25), 8: (0.45, 0.6), 11: (0.55, 0.6), 10: (0.45, 0.95)}
    px = {j: (x * 200, y * 100) for j, (x, y) in pts.items()}
    ref = frame(px, 200, 100)  # landscape reference, mapped onto a portrait canvas
    a = from_pose_keypoint([ref, frame(pts, 160, 90)], height=128, width=72, align=False)
    b = from_pose_keypoint([frame(pts, 200, 100), frame({j: (x * 160, y * 90) for j, (x, y) in pts.items()}, 160, 90)],
                           height=128, width=72, align=False)
    np.testing.assert_allclose(a.body, b.body, rtol=1e-6)
    rh, rw, top, left = cover_crop(100, 200, 128, 72)
    np.testing.assert_allclose(a.body[0, 1], [(0.5 * rw - left) / 72, (0.25 * rh - top) / 128], rtol=1e-5)
    np.testing.assert_allclose(a.body[1, 1], [0.5, 0.25], rtol=1e-6)  # driving stays frame-normalised
    assert (a.body_subset[0] >= 0).sum() == 5 and not a.body[0][a.body_subset[0] < 0].any()


def test_separate_reference_tracking_and_filling():
    pts = {0: (0.3, 0.1), 1: (0.3, 0.2), 8: (0.3, 0.6), 10: (0.3, 0.9)}
    small = {"pose_keypoints_2d": sum(([0.8, 0.4, 1.0] if j in (0, 1) else [0.0, 0.0, 0.0] for j in range(18)), [])}
    drv = [frame(pts, 64, 96, [small]), {"people": [], "canvas_width": 64, "canvas_height": 96}, frame(pts, 64, 96)]
    poses = from_pose_keypoint(drv, height=96, width=64, align=False, reference=frame(pts, 64, 96))
    assert poses.num_frames == 4 and poses.filled_frames == (2,)
    np.testing.assert_allclose(poses.body[1, 0], [0.3, 0.1], rtol=1e-6)  # the larger person
    np.testing.assert_allclose(poses.body[2], poses.body[1], rtol=1e-6)


def test_alignment_uses_only_present_points():
    ref = {0: (0.5, 0.1), 1: (0.5, 0.2), 8: (0.5, 0.6), 10: (0.5, 0.9)}
    drv = {0: (0.4, 0.2), 1: (0.4, 0.3), 8: (0.4, 0.5)}  # ankle missing in the driving frame
    poses = from_pose_keypoint([frame(ref, 64, 96), frame(drv, 64, 96)], height=96, width=64, align=True)
    ys = np.array([0.2, 0.3, 0.5])
    ay, by = np.polyfit(ys, [0.1, 0.2, 0.6], 1)
    np.testing.assert_allclose(poses.body[1, [0, 1, 8], 1], ay * ys + by, rtol=1e-5)
    assert not poses.body[1, 10].any() and poses.body_subset[1, 10] == -1


def test_bad_input_errors():
    with pytest.raises(InputError, match="at least one driving frame"):
        from_pose_keypoint([frame({0: (0.5, 0.5), 1: (0.5, 0.6)}, 8, 8)], height=8, width=8)
    with pytest.raises(InputError, match="canvas"):
        from_pose_keypoint([{"people": []}, {"people": []}], height=8, width=8)
    with pytest.raises(InputError, match="18 \\[x, y, c\\]"):
        bad = {"people": [{"pose_keypoints_2d": [0.5, 0.5, 1.0] * 25}], "canvas_width": 8, "canvas_height": 8}
        from_pose_keypoint([bad, bad], height=8, width=8)
    with pytest.raises(InputError, match="reference POSE_KEYPOINT frame has no person"):
        from_pose_keypoint([{"people": [], "canvas_width": 8, "canvas_height": 8}] * 2, height=8, width=8)
    empty = {"people": [], "canvas_width": 8, "canvas_height": 8}
    with pytest.raises(InputError, match="No person found in any of the 2"):
        from_pose_keypoint([frame({0: (0.5, 0.5), 1: (0.5, 0.6)}, 8, 8), empty, empty], height=8, width=8)


def person_frame(**parts) -> dict:
    return {"people": [parts], "canvas_width": 8, "canvas_height": 8}


GOOD_BODY = [0.5, 0.5, 1.0] * 18


@pytest.mark.parametrize("parts, part", [
    ({"pose_keypoints_2d": ["0.5", "x", "1"] * 18}, "pose_keypoints_2d"),  # text where numbers belong
    ({"pose_keypoints_2d": [[0.5, 0.5, 1.0]] * 17 + [[0.5, 0.5]]}, "pose_keypoints_2d"),  # uneven nested lists
    ({"pose_keypoints_2d": GOOD_BODY, "hand_left_keypoints_2d": "1, 2, 3"}, "hand_left_keypoints_2d"),
    ({"pose_keypoints_2d": GOOD_BODY, "face_keypoints_2d": [{"x": 1}]}, "face_keypoints_2d"),
])
def test_malformed_numbers_name_the_frame_and_the_part(parts, part):
    good = person_frame(pose_keypoints_2d=GOOD_BODY)
    with pytest.raises(InputError) as err:
        from_pose_keypoint([good, good, person_frame(**parts)], height=8, width=8)
    message = str(err.value)
    assert message.startswith(f"POSE_KEYPOINT frame 1, person 0: '{part}' must be numbers")
    assert "\n" not in message


def test_empty_pose_keypoint_is_called_empty():
    from dispose_core import pipeline

    with pytest.raises(InputError, match="^The POSE_KEYPOINT input is empty"):
        from_pose_keypoint([], height=8, width=8)
    with pytest.raises(InputError, match="^The POSE_KEYPOINT input is empty"):
        pipeline.select_keypoint_frames([], 30.0)
    with pytest.raises(InputError, match="^The reference POSE_KEYPOINT is empty"):
        from_pose_keypoint([person_frame(pose_keypoints_2d=GOOD_BODY)], height=8, width=8, reference=[])
    with pytest.raises(InputError, match=r"at least one driving frame \(got 1 frame"):
        pipeline.select_keypoint_frames([person_frame(pose_keypoints_2d=GOOD_BODY)], 30.0)
