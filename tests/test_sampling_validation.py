"""sample_video rejects bad input with an InputError that names the problem and the fix,
before any model runs (``models=None`` proves no model is touched)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.sampling.control import ControlInputs
from dispose_core.sampling.pose_frames import pose_frames
from dispose_core.sampling.sampler import sample_video, validate
from dispose_core.types import DenseFlow, MotionField, PointEmbeddings


def _inputs(frames: int = 5, height: int = 128, width: int = 64):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    poses = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return reference, poses


def _control(frames: int, height: int = 128, width: int = 64, point_frames: int | None = None, **kw):
    flow = torch.zeros(frames - 1, 2, height, width)
    pf = frames if point_frames is None else point_frames
    points = PointEmbeddings(torch.zeros(18, 8), np.zeros((pf, 18, 2), np.float32), np.zeros((pf, 18), np.float32))
    return ControlInputs(controlnet=None, motion_field=MotionField(flow), dense_flow=DenseFlow(flow.clone()),
                         points=points, **kw)


@pytest.mark.parametrize("height,width,hint", [(100, 64, "64 or 128"), (128, 96, "64 or 128"), (130, 64, "128 or 192")])
def test_size_not_multiple_of_64_names_size_and_nearest(height, width, hint):
    reference, poses = _inputs(height=height, width=width)
    with pytest.raises(InputError, match="multiple of 64") as err:
        sample_video(None, reference, poses)
    assert hint in str(err.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"overlap": 4, "tile_size": 4}, "1..tile_size-1 = 1..3, got 4"),
    ({"overlap": 0, "tile_size": 4}, "never be denoised"),
    ({"tile_size": 1, "overlap": 0}, "tile_size must be at least 2"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"decode_chunk_size": 0}, "decode_chunk_size"),
])
def test_bad_settings_raise(kwargs, match):
    reference, poses = _inputs()
    with pytest.raises(InputError, match=match):
        sample_video(None, reference, poses, **kwargs)


def test_reference_and_pose_size_mismatch():
    reference, _ = _inputs(height=64)
    _, poses = _inputs(height=128)
    with pytest.raises(InputError, match="Render the poses on the reference's canvas"):
        sample_video(None, reference, poses)


def test_single_frame_rejected():
    reference, poses = _inputs(frames=1)
    with pytest.raises(InputError, match="at least one driving frame"):
        sample_video(None, reference, poses)


@pytest.mark.parametrize("motion_frames,point_frames", [(4, 5), (5, 6)])
def test_frame_count_mismatch_between_poses_flows_points(motion_frames, point_frames):
    reference, poses = _inputs(frames=5)
    control = _control(motion_frames, point_frames=point_frames)
    with pytest.raises(InputError, match="Frame counts do not match"):
        sample_video(None, reference, poses, control=control)


def test_flow_size_mismatch():
    reference, poses = _inputs(frames=5)
    control = _control(5, height=64)
    with pytest.raises(InputError, match="motion_field"):
        sample_video(None, reference, poses, control=control, tile_size=4, overlap=2)


@pytest.mark.parametrize("start,end", [(0.6, 0.4), (-0.1, 1.0), (0.0, 1.5)])
def test_bad_control_percent(start, end):
    reference, poses = _inputs(frames=5)
    with pytest.raises(InputError, match="start_percent"):
        sample_video(None, reference, poses, control=_control(5, start_percent=start, end_percent=end),
                     tile_size=4, overlap=2)


def test_tile_size_clamped_to_short_video():
    reference, poses = _inputs(frames=5)
    ref, pose = torch.from_numpy(reference), pose_frames(poses)
    assert validate(ref, pose, None, steps=1, tile_size=16, overlap=6, decode_chunk_size=8) == 5
    assert validate(ref, pose, None, steps=1, tile_size=4, overlap=2, decode_chunk_size=8) == 4


def test_bad_image_types():
    reference, poses = _inputs()
    with pytest.raises(InputError, match="uint8 or float"):
        sample_video(None, reference.astype(np.int32), poses)
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        sample_video(None, reference[None], poses)
    with pytest.raises(InputError, match="RGB"):
        sample_video(None, reference, poses[..., :2])


def test_active_steps_follow_percent_window():
    c = _control(5, start_percent=0.2, end_percent=0.6)
    assert c.active_steps(10) == [False, False, True, True, True, True, False, False, False, False]
    assert all(_control(5).active_steps(7))
    assert not any(_control(5, start_percent=0.5, end_percent=0.5).active_steps(4))
