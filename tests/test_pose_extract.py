"""Video -> one person's PoseSequence: person choice, tracking, filling, alignment switch, errors."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.pose.align import fit_alignment
from dispose_core.pose.dwpose import ImagePeople
from dispose_core.pose.extract import extract_poses

REF_HW = (128, 72)
FRAME_HW = (90, 160)


def person(x0: float, y0: float, x1: float, y1: float, score: float = 0.9, seed: int = 0):
    """A box and 134 whole-body points inside it (pixels), all with ``score``."""
    rng = np.random.default_rng(seed)
    kps = np.stack([rng.uniform(x0, x1, 134), rng.uniform(y0, y1, 134)], -1)
    return np.array([x0, y0, x1, y1], np.float64), kps, np.full(134, score)


def image(hw, *people) -> ImagePeople:
    """An ImagePeople; with no people, the official whole-image fallback pose (low scores)."""
    if not people:
        _, kps, sc = person(0, 0, hw[1], hw[0], score=0.1, seed=99)
        return ImagePeople(np.zeros((0, 4)), kps[None], sc[None], *hw)
    boxes, kps, scores = (np.stack(v) for v in zip(*people))
    return ImagePeople(boxes, kps, scores, *hw)


class ScriptedDetector:
    """Returns prepared ImagePeople: first the reference, then the driving frames in order."""

    def __init__(self, ref: ImagePeople, frames: list[ImagePeople]):
        self.queue = [ref] + frames
        self.calls: list[int] = []

    def __call__(self, images):
        self.calls.append(len(images))
        out, self.queue = self.queue[:len(images)], self.queue[len(images):]
        return out


def run(ref, frames, **kw):
    det = ScriptedDetector(ref, frames)
    poses = extract_poses(det, np.zeros(REF_HW + (3,), np.uint8), np.zeros((len(frames),) + FRAME_HW + (3,), np.uint8),
                          **kw)
    return poses, det


def test_main_person_is_largest_and_tracked_by_overlap():
    small, big = person(5, 5, 20, 30, seed=1), person(30, 10, 70, 120, seed=2)
    frames = [image(FRAME_HW, person(10, 10, 40, 80, seed=3), person(100, 5, 150, 85, seed=4)),
              # the other person is now larger, but the tracked one still overlaps the previous box
              image(FRAME_HW, person(0, 0, 160, 90, seed=5), person(14, 12, 44, 82, seed=6))]
    poses, det = run(image(REF_HW, small, big), frames, align=False, batch_size=8, person="largest_tracked", empty_frames="interpolate")
    np.testing.assert_allclose(poses.body[0], big[1][:18] / [REF_HW[1], REF_HW[0]], rtol=1e-6)
    # first driving frame: largest box is the 2nd person
    np.testing.assert_allclose(poses.body[1], frames[0].keypoints[1, :18] / [FRAME_HW[1], FRAME_HW[0]], rtol=1e-6)
    assert poses.num_frames == 3 and poses.filled_frames == () and det.calls == [1, 2]


def test_tracking_jumps_to_nearest_when_nothing_overlaps():
    frames = [image(FRAME_HW, person(10, 10, 40, 80, seed=3)),
              image(FRAME_HW, person(120, 0, 159, 89, seed=4), person(45, 10, 75, 80, seed=5))]
    poses, _ = run(image(REF_HW, person(5, 5, 60, 120)), frames, align=False, person="largest_tracked", empty_frames="interpolate")
    np.testing.assert_allclose(poses.body[2], frames[1].keypoints[1, :18] / [FRAME_HW[1], FRAME_HW[0]], rtol=1e-6)


def test_frames_without_person_are_interpolated_and_reported(caplog):
    a, b = person(10, 10, 40, 80, seed=3), person(20, 10, 50, 80, seed=4)
    frames = [image(FRAME_HW), image(FRAME_HW, a), image(FRAME_HW),
              image(FRAME_HW, person(20, 10, 50, 80, score=0.2, seed=7)),  # detected, nothing visible
              image(FRAME_HW, b), image(FRAME_HW)]
    with caplog.at_level(logging.WARNING):
        poses, _ = run(image(REF_HW, person(5, 5, 60, 120)), frames, align=False, batch_size=4,
                       person="largest_tracked", empty_frames="interpolate")
    assert poses.filled_frames == (1, 3, 4, 6)
    assert "3 of 6" not in caplog.text and "4 of 6" in caplog.text and "0, 2, 3, 5" in caplog.text
    norm = np.array([FRAME_HW[1], FRAME_HW[0]])
    pa, pb = a[1][:18] / norm, b[1][:18] / norm
    np.testing.assert_allclose(poses.body[1], pa, rtol=1e-6)  # start: nearest
    np.testing.assert_allclose(poses.body[3], pa + (pb - pa) / 3, rtol=1e-5)
    np.testing.assert_allclose(poses.body[4], pa + 2 * (pb - pa) / 3, rtol=1e-5)
    np.testing.assert_allclose(poses.body[6], pb, rtol=1e-6)  # end: nearest
    assert np.isfinite(poses.body).all() and (poses.body_subset[1:] >= 0).all()


def test_nan_and_zero_scores_never_crash_or_leak():
    bad = person(10, 10, 40, 80, seed=3)
    bad[2][:5] = np.nan
    bad[1][5] = np.nan
    frames = [image(FRAME_HW, bad), image(FRAME_HW, person(10, 10, 40, 80, score=0.0, seed=4))]
    poses, _ = run(image(REF_HW, person(5, 5, 60, 120)), frames, align=True, person="largest_tracked", empty_frames="interpolate")
    for arr in (poses.body, poses.body_score, poses.hands, poses.faces, poses.faces_score):
        assert np.isfinite(arr).all()
    assert (poses.body_subset[1, :5] == -1).all() and poses.filled_frames == (2,)


def test_one_driving_frame_and_alignment_matches_the_fit():
    ref = person(5, 5, 60, 120, seed=1)
    drv = person(40, 20, 90, 85, seed=2)
    poses, _ = run(image(REF_HW, ref), [image(FRAME_HW, drv)], align=True)
    fit = fit_alignment(ref[1][:18] / [REF_HW[1], REF_HW[0]], np.arange(18.0),
                        (drv[1][:18] / [FRAME_HW[1], FRAME_HW[0]])[None], REF_HW, FRAME_HW)
    expected = fit.apply(drv[1][:18] / [FRAME_HW[1], FRAME_HW[0]])
    np.testing.assert_allclose(poses.body[1], expected, rtol=1e-5)
    unaligned, _ = run(image(REF_HW, ref), [image(FRAME_HW, drv)], align=False)
    np.testing.assert_allclose(unaligned.body[1], drv[1][:18] / [FRAME_HW[1], FRAME_HW[0]], rtol=1e-6)
    assert not np.allclose(unaligned.body[1], poses.body[1])
    np.testing.assert_array_equal(unaligned.body[0], poses.body[0])  # the reference is never moved


def test_fit_uses_single_person_frames_and_optionally_skips_empty_ones():
    ref = image(REF_HW, person(5, 5, 60, 120, seed=1))
    frames = [image(FRAME_HW, person(40, 20, 90, 85, seed=2)), image(FRAME_HW),
              image(FRAME_HW, person(10, 10, 40, 80, seed=3), person(100, 5, 150, 85, seed=4))]
    official, _ = run(ref, frames)
    skipped, _ = run(ref, frames, fit_on_empty_frames=False)
    only_first, _ = run(ref, frames[:1])
    np.testing.assert_allclose(skipped.body[1], only_first.body[1], rtol=1e-6)
    assert not np.allclose(official.body[1], skipped.body[1])


def test_progress_and_stop_between_batches():
    frames = [image(FRAME_HW, person(10, 10, 40, 80, seed=i)) for i in range(5)]
    seen = []
    run(image(REF_HW, person(5, 5, 60, 120)), frames, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 6), (3, 6), (5, 6), (6, 6)]

    class Stop(Exception):
        pass

    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        run(image(REF_HW, person(5, 5, 60, 120)), frames, batch_size=2, should_stop=stop)


def test_no_person_errors():
    with pytest.raises(InputError, match="reference"):
        run(image(REF_HW), [image(FRAME_HW, person(10, 10, 40, 80))])
    with pytest.raises(InputError, match="reference"):
        run(image(REF_HW, person(5, 5, 60, 120, score=0.1)), [image(FRAME_HW, person(10, 10, 40, 80))])
    with pytest.raises(InputError, match="any of the 2 driving frames"):
        run(image(REF_HW, person(5, 5, 60, 120)), [image(FRAME_HW), image(FRAME_HW)])
    with pytest.raises(InputError, match="uint8"):
        extract_poses(ScriptedDetector(None, []), np.zeros(REF_HW + (3,), np.float32), np.zeros((1, 4, 4, 3), np.uint8))


def test_end_to_end_on_tiny_onnx_models(tiny_models_dir):
    from dispose_core.pose.dwpose import load_dwpose
    from dispose_core.pose.render import render_poses

    model = load_dwpose(tiny_models_dir / "dwpose" / "yolox_l.onnx", tiny_models_dir / "dwpose" / "dw-ll_ucoco_384.onnx")
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 256, (256, 144, 3), dtype=np.uint8)
    frames = rng.integers(0, 256, (3, 160, 96, 3), dtype=np.uint8)
    poses = extract_poses(model, reference, frames, batch_size=2)
    assert poses.num_frames == 4 and (poses.height, poses.width) == (256, 144) and poses.filled_frames == ()
    assert (poses.body_subset >= 0).sum() > 40 and np.isfinite(poses.body).all()
    images = render_poses(poses)
    assert images.shape == (4, 256, 144, 3) and images.any(axis=(1, 2, 3)).all()
