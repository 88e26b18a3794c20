"""Per-limb retargeting: driving bone directions with the reference's bone lengths.

A short-legged reference and a long-legged driver on a 200 x 200 canvas; every expected point
is worked out by hand (parent's new position + driving direction * reference length).
"""
from __future__ import annotations

import numpy as np
import pytest

from dispose_core.pose.retarget import BONES, retarget_limbs

SIZE = 200
REF = [(50, 20), (50, 30), (40, 30), (40, 45), (40, 60), (60, 30), (60, 40), (60, 50), (45, 55), (45, 65),
       (45, 75), (55, 55), (55, 65), (55, 75), (47, 16), (53, 16), (44, 20), (56, 20)]
DRIVING = [(50, 20), (50, 40), (40, 40), (25, 40), (10, 40), (60, 40), (60, 60), (60, 80), (45, 65), (45, 90),
           (45, 115), (55, 65), (70, 85), (70, 110), (44, 12), (56, 12), (38, 20), (62, 20)]
EXPECTED = [(50, 30), (50, 40), (40, 40), (25, 40), (10, 40), (60, 40), (60, 50), (60, 60), (45, 65), (45, 75),
            (45, 85), (55, 65), (61, 73), (61, 83), (47, 26), (53, 26), (44, 30), (56, 30)]
HAND_OFFSETS = np.array([(2, 4), (-2, 6), (0, 8)] * 7, np.float64)  # 21 points around a wrist
FACE_OFFSETS = np.array([(4, 0), (-4, 0), (0, 4), (0, -2)] * 17, np.float64)  # 68 points around the nose


def person(body, frames: int | None = None):
    body = np.asarray(body, np.float64)
    hands = np.stack([body[7] + HAND_OFFSETS, body[4] + HAND_OFFSETS])
    faces = body[0] + FACE_OFFSETS
    p = {"body": body / SIZE, "body_score": np.full(18, 0.9), "hands": hands / SIZE,
         "hands_score": np.full((2, 21), 0.9), "faces": faces / SIZE, "faces_score": np.full(68, 0.9)}
    return p if frames is None else {k: np.stack([v] * frames) for k, v in p.items()}


def pixels(a):
    return np.asarray(a) * SIZE


def test_long_legged_driver_gets_the_reference_bone_lengths():
    out = retarget_limbs(person(REF), person(DRIVING, frames=2), SIZE, SIZE)
    for f in range(2):
        np.testing.assert_allclose(pixels(out["body"][f]), EXPECTED, atol=1e-4)
        ref_len = [np.hypot(*np.subtract(REF[c], REF[p])) for p, c in BONES]
        got_len = [np.hypot(*(pixels(out["body"][f, c]) - pixels(out["body"][f, p]))) for p, c in BONES]
        np.testing.assert_allclose(got_len, ref_len, atol=1e-4)
    # left forearm 20 -> 10 px: the left hand halves around the new wrist; the right arm is unchanged
    np.testing.assert_allclose(pixels(out["hands"][0, 0]), np.add((60, 60), HAND_OFFSETS * 0.5), atol=1e-4)
    np.testing.assert_allclose(pixels(out["hands"][0, 1]), np.add((10, 40), HAND_OFFSETS), atol=1e-4)
    # neck-nose 20 -> 10 px: the face halves around the new nose
    np.testing.assert_allclose(pixels(out["faces"][0]), np.add((50, 30), FACE_OFFSETS * 0.5), atol=1e-4)
    np.testing.assert_array_equal(out["body_score"], person(DRIVING, frames=2)["body_score"])


def test_unseen_bones_keep_the_driving_length_and_hidden_points_follow_their_parent():
    ref = person(REF)
    ref["body_score"][17] = 0.0  # the reference's left ear is not visible
    drv = person(DRIVING, frames=1)
    drv["body_score"][0, 10] = 0.1  # the driver's right ankle is not visible
    out = pixels(retarget_limbs(ref, drv, SIZE, SIZE)["body"][0])
    np.testing.assert_allclose(out[17], (53 + 6, 26 + 8), atol=1e-4)  # new left eye + driving (6, 8)
    np.testing.assert_allclose(out[10], (45, 75 + 25), atol=1e-4)  # new right knee + driving (0, 25)


def test_extract_switch_applies_it_to_the_chosen_person():
    from test_pose_extract import FRAME_HW, REF_HW, image, person as detected, run

    ref = detected(5, 5, 60, 120, seed=1)
    frames = [image(FRAME_HW, detected(40, 5, 90, 88, seed=k)) for k in (2, 3)]
    plain, _ = run(image(REF_HW, ref), frames)
    poses, _ = run(image(REF_HW, ref), frames, retarget=True)
    px = np.array([REF_HW[1], REF_HW[0]])
    for p, c in BONES:
        ref_len = np.hypot(*(ref[1][c] - ref[1][p]))
        assert np.hypot(*((poses.body[1:, c] - poses.body[1:, p]) * px).T) == pytest.approx([ref_len] * 2, rel=1e-4)
    np.testing.assert_allclose(poses.body[1:, 1], plain.body[1:, 1], rtol=1e-6)  # the neck stays where the fit put it
    assert not np.allclose(poses.body[1:], plain.body[1:])
