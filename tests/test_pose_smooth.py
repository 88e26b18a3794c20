"""Optional keypoint smoothing: Savitzky-Golay (quadratic) over each visible keypoint track.

Expected values use the textbook 5-point quadratic Savitzky-Golay weights (-3, 12, 17, 12, -3) / 35:
on an alternating +-1 px jitter an interior point at +1 goes to (-3 - 12 + 17 - 12 - 3) / 35 = -13/35.
"""
from __future__ import annotations

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.pose.smooth import smooth_keypoints

SIZE, FRAMES = 100, 9
JITTER = np.array([(-1.0) ** k for k in range(FRAMES)])  # +1, -1, +1, ...


def track(x_px: np.ndarray, y_px: np.ndarray, score: float = 0.9):
    body = np.zeros((FRAMES, 18, 2))
    body[:, 0, 0], body[:, 0, 1] = x_px / SIZE, y_px / SIZE
    scores = np.zeros((FRAMES, 18))
    scores[:, 0] = score
    return {"body": body, "body_score": scores, "hands": np.full((FRAMES, 2, 21, 2), 0.3),
            "hands_score": np.zeros((FRAMES, 2, 21)), "faces": np.full((FRAMES, 68, 2), 0.3),
            "faces_score": np.zeros((FRAMES, 68))}


def x_px(poses) -> np.ndarray:
    return poses["body"][:, 0, 0] * SIZE


def test_off_by_default_and_short_videos_untouched():
    poses = track(50 + JITTER, np.full(FRAMES, 50.0))
    assert smooth_keypoints(poses, SIZE, SIZE) is poses
    assert smooth_keypoints(poses, SIZE, SIZE, window=11) is poses  # fewer frames than the window


def test_jitter_is_damped_with_the_savitzky_golay_weights():
    poses = track(50 + JITTER, np.linspace(20, 60, FRAMES))  # y moves linearly: kept exactly
    out = smooth_keypoints(poses, SIZE, SIZE, window=5, max_shift=10)
    np.testing.assert_allclose(x_px(out)[2:-2], 50 - 13 / 35 * JITTER[2:-2], atol=1e-4)
    np.testing.assert_allclose(out["body"][:, 0, 1] * SIZE, np.linspace(20, 60, FRAMES), atol=1e-4)
    np.testing.assert_allclose(out["hands"], poses["hands"], atol=1e-6)  # hidden parts stay as they are


def test_max_shift_caps_the_move_in_pixels():
    out = smooth_keypoints(track(50 + JITTER, np.full(FRAMES, 50.0)), SIZE, SIZE, window=5, max_shift=0.2)
    np.testing.assert_allclose(x_px(out)[2:-2], 50 + 0.8 * JITTER[2:-2], atol=1e-4)


def test_hidden_frames_neither_move_nor_pull_their_neighbours():
    x = np.linspace(10, 90, FRAMES)
    poses = track(x, np.full(FRAMES, 50.0))
    poses["body"][4, 0] = 0.0
    poses["body_score"][4, 0] = 0.1
    out = smooth_keypoints(poses, SIZE, SIZE, window=5)
    np.testing.assert_allclose(np.delete(x_px(out), 4), np.delete(x, 4), atol=1e-4)
    assert out["body"][4, 0, 0] == 0.0


@pytest.mark.parametrize("window, shift", [(4, 8.0), (1, 8.0), (5, -1.0)])
def test_bad_settings(window, shift):
    with pytest.raises(InputError, match="odd window"):
        smooth_keypoints(track(50 + JITTER, np.full(FRAMES, 50.0)), SIZE, SIZE, window=window, max_shift=shift)


def test_extract_switch():
    from test_pose_extract import FRAME_HW, REF_HW, image, person, run

    frames = [image(FRAME_HW, person(10 + (k % 2) * 4, 10, 50 + (k % 2) * 4, 80, seed=5)) for k in range(7)]
    plain, _ = run(image(REF_HW, person(5, 5, 60, 120)), frames)
    smooth, _ = run(image(REF_HW, person(5, 5, 60, 120)), frames, smooth_window=5)
    jitter = lambda p: np.abs(np.diff(p.body[1:, :, 0], axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(plain)
    np.testing.assert_array_equal(smooth.body[0], plain.body[0])  # the reference is never smoothed
