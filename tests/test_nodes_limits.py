"""The nodes refuse sizes that cannot run with one line, and out-of-memory errors, CPU ones
included, become DeviceMemoryError with what to lower (ComfyUI in-process). Sizes by hand as in
test_limits.py: a 64x64 canvas is 49152 B per frame of the float32 animation."""
from __future__ import annotations

import pytest
import torch

from dispose_core import errors, limits
from host_utils import call_node, load_pack
from test_limits import CPU_OOM

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def sample():
    from dispose_core.sample import make_sample

    s = make_sample(num_frames=20)
    return {"reference": torch.from_numpy(s.reference).float()[None] / 255, "keypoints": s.pose_keypoint}


def extract(sample, **kwargs):
    return call_node("DisPoseDWPoseExtract", **{"reference_image": sample["reference"], "align": True,
                                                "pose_keypoint": sample["keypoints"], **kwargs})


def test_resolution_above_the_maximum_is_one_line(sample):
    with pytest.raises(errors.InputError) as err:
        extract(sample, resolution=2048)
    assert str(err.value).startswith("Resolution 2048 is above 1024") and "\n" not in str(err.value)


def test_too_many_frames_for_the_machine_is_one_line(sample, monkeypatch):
    """20 keypoint frames at 30 fps keep 10 (the reference not counted); 400000 B hold 8 at 64x64."""
    monkeypatch.setattr(limits, "physical_memory", lambda: 400_000)
    with pytest.raises(errors.InputError) as err:
        extract(sample, resolution=64, fps=30.0)
    message = str(err.value)
    assert message.startswith("10 frames on a 64x64 canvas cannot fit") and "at most 8 fit" in message
    poses, *_ = extract(sample, resolution=64, fps=30.0, max_frames=8)
    assert poses.num_frames == 9


def test_cpu_out_of_memory_in_a_stage_gives_advice(sample, monkeypatch):
    pose = load_pack().nodes.pose

    def oom(*_args, **_kwargs):
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(pose.pipeline, "poses_from_keypoints", oom)
    with pytest.raises(errors.DeviceMemoryError) as err:
        extract(sample, resolution=64)
    message = str(err.value)
    assert message.startswith("Out of memory ([enforce fail at alloc_cpu.cpp:127]")
    assert "resolution or max_frames in DWPose Extract" in message and "\n" not in message
    assert isinstance(err.value.__cause__, RuntimeError)
