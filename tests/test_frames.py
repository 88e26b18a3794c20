"""Driving-frame sampling: the official ``range(0, len, sample_stride * max(1, int(fps / 24)))``.

Expected values are written out by hand from that formula (preprocess.py get_video_pose), not
computed by the code under test.
"""
from __future__ import annotations

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.frames import FrameSampling, effective_stride, sample_frames, take

# fps -> (effective stride, kept indices of a 20-frame clip, playback fps) with sample_stride 2
OFFICIAL_20_FRAMES = {
    24: (2, (0, 2, 4, 6, 8, 10, 12, 14, 16, 18), 12.0),
    25: (2, (0, 2, 4, 6, 8, 10, 12, 14, 16, 18), 12.5),
    30: (2, (0, 2, 4, 6, 8, 10, 12, 14, 16, 18), 15.0),
    50: (4, (0, 4, 8, 12, 16), 12.5),
    60: (4, (0, 4, 8, 12, 16), 15.0),
}


@pytest.mark.parametrize("fps", sorted(OFFICIAL_20_FRAMES))
def test_official_defaults(fps):
    stride, indices, out_fps = OFFICIAL_20_FRAMES[fps]
    got = sample_frames(20, fps)
    assert (got.stride, got.indices) == (stride, indices)
    assert got.fps == pytest.approx(out_fps)


@pytest.mark.parametrize("fps, sample_stride, stride", [
    (23.976, 2, 2), (29.97, 2, 2), (47.9, 2, 2), (48, 2, 4), (59.94, 2, 4), (72, 2, 6), (120, 2, 10),
    (30, 1, 1), (60, 1, 2), (30, 3, 3), (60, 3, 6), (12, 2, 2),
])
def test_fps_factor(fps, sample_stride, stride):
    assert effective_stride(fps, sample_stride) == stride


def test_odd_length_keeps_the_last_frame():
    assert sample_frames(21, 30).indices == (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    assert sample_frames(1, 60).indices == (0,)


def test_skip_then_stride_then_cap():
    got = sample_frames(20, 30, FrameSampling(skip_first_frames=3, max_frames=4))
    assert got.indices == (3, 5, 7, 9) and got.fps == pytest.approx(15.0)
    assert sample_frames(20, 60, FrameSampling(skip_first_frames=1)).indices == (1, 5, 9, 13, 17)
    assert sample_frames(20, 30, FrameSampling(sample_stride=1, max_frames=3)).indices == (0, 1, 2)
    assert sample_frames(5, 30, FrameSampling(max_frames=10)).indices == (0, 2, 4)


def test_take_applies_the_same_rule_to_any_sequence():
    items = [f"frame{i}" for i in range(9)]
    kept, sampled = take(items, 50)
    assert kept == ["frame0", "frame4", "frame8"] and sampled.fps == pytest.approx(12.5)


def test_bad_settings_and_empty_results_are_input_errors():
    with pytest.raises(InputError, match="skip_first_frames is 20"):
        sample_frames(20, 30, FrameSampling(skip_first_frames=20))
    with pytest.raises(InputError, match="frame rate"):
        sample_frames(20, 0)
    with pytest.raises(InputError, match="sample_stride >= 1"):
        FrameSampling(sample_stride=0)
    with pytest.raises(InputError, match="has 0 frame"):
        sample_frames(0, 30)


def test_pipeline_selects_video_frames_and_keypoint_frames_alike():
    import torch

    from dispose_core import pipeline
    from dispose_core.video import image_frames

    frames = torch.arange(20, dtype=torch.float32).reshape(20, 1, 1, 1).expand(20, 2, 2, 3) / 255
    kept = image_frames(frames, 60)
    assert [int(f[0, 0, 0]) for f in kept] == [0, 4, 8, 12, 16] and kept.fps == pytest.approx(15.0)
    assert len(kept) == 5 and {f.dtype for f in kept} == {np.dtype(np.uint8)}
    ref, driving = {"id": "ref"}, [{"id": i} for i in range(20)]
    kept_kp, fps_kp = pipeline.select_keypoint_frames([ref] + driving, 30, FrameSampling(max_frames=3))
    assert [k["id"] for k in kept_kp] == ["ref", 0, 2, 4] and fps_kp == pytest.approx(15.0)
    no_ref, _ = pipeline.select_keypoint_frames(driving, 60, reference_first=False)
    assert [k["id"] for k in no_ref] == [0, 4, 8, 12, 16]
    with pytest.raises(InputError, match="no frames"):
        image_frames(torch.zeros(0, 4, 4, 3), 30)
