"""DWPose Extract on core's VIDEO (LoadVideo's output) instead of an IMAGE batch: the same poses as
the IMAGE path, and only the kept frames converted (a wrapped decoder counts them). The driving
clip is the bundled sample written losslessly (PNG in MOV), so both paths see identical pixels.
Kept indices are the official rule by hand: 20 frames at 30 fps, stride 2 -> 0, 2, ..., 18."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from dispose_core import errors
from host_utils import call_node, model_dirs
from test_demo_cli import CountingDecoder

pytestmark = pytest.mark.comfy
RES = 64
DRIVING = 20


@pytest.fixture(scope="module")
def sample():
    from dispose_core.sample import make_sample

    s = make_sample(num_frames=DRIVING)
    return {"reference": torch.from_numpy(s.reference).float()[None] / 255, "frames": s.frames}


@pytest.fixture(scope="module")
def clip(sample, tmp_path_factory):
    """The sample's frames as a lossless 30 fps video file."""
    path = tmp_path_factory.mktemp("video") / "driving.mov"
    frames = sample["frames"]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("png", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def dwpose(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        (model,) = call_node("DisPoseDWPoseLoader", detector="yolox_l.onnx", pose_model="dw-ll_ucoco_384.onnx")
    return model


def extract(sample, dwpose, **kwargs):
    return call_node("DisPoseDWPoseExtract", reference_image=sample["reference"], resolution=RES, align=True,
                     dwpose_model=dwpose, **kwargs)


def from_images(sample, dwpose, frames: np.ndarray, **kwargs):
    return extract(sample, dwpose, driving_frames=torch.from_numpy(frames).float() / 255, fps=30.0, **kwargs)


@pytest.mark.parametrize("options, kept", [({}, list(range(0, 20, 2))), ({"max_frames": 3}, [0, 2, 4])])
def test_video_input_decodes_only_the_kept_frames(sample, clip, dwpose, monkeypatch, options, kept):
    from comfy_api.latest import InputImpl

    counter = CountingDecoder(monkeypatch)
    poses, skeletons, keypoints, fps = extract(sample, dwpose, driving_video=InputImpl.VideoFromFile(str(clip)),
                                               **options)
    assert len(counter.converted) == len(kept)
    assert len(counter.decoded) == kept[-1] + 1  # decoding stops at the last kept frame
    expected, expected_skeletons, _, expected_fps = from_images(sample, dwpose, sample["frames"], **options)
    assert poses.num_frames == len(kept) + 1 and fps == expected_fps == 15.0
    np.testing.assert_array_equal(poses.body, expected.body)
    torch.testing.assert_close(skeletons, expected_skeletons, rtol=0, atol=0)


def test_a_video_without_a_file_gives_its_components(sample, dwpose):
    """CreateVideo's VIDEO has no stream source: its decoded frames and rate are used."""
    from comfy_api.latest import InputImpl, Types

    images = torch.from_numpy(sample["frames"]).float() / 255
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=Fraction(60)))
    poses, *_, fps = extract(sample, dwpose, driving_video=video)
    expected, *_ = extract(sample, dwpose, driving_frames=images, fps=60.0)
    assert poses.num_frames == 6 and fps == 15.0  # frames 0, 4, ..., 16
    np.testing.assert_array_equal(poses.body, expected.body)


def test_a_trimmed_video_samples_its_window(sample, clip, dwpose):
    """Video Slice (ComfyUI 0.33.0): from 0.5 s for 0.4 s at 30 fps = frames 15..26 of 20 -> 15..19, keeps 15, 17, 19."""
    from comfy_api.latest import InputImpl

    if not hasattr(InputImpl.VideoFromFile, "get_active_trim_window"):
        pytest.skip("this ComfyUI has no trimmed VIDEO (Video Slice came with 0.33.0)")
    poses, *_ = extract(sample, dwpose, driving_video=InputImpl.VideoFromFile(str(clip), start_time=0.5,
                                                                              duration=0.4))
    expected, *_ = from_images(sample, dwpose, sample["frames"][15:])
    assert poses.num_frames == 4
    np.testing.assert_array_equal(poses.body, expected.body)


def test_both_driving_inputs_is_an_error(sample, clip, dwpose):
    from comfy_api.latest import InputImpl

    with pytest.raises(errors.InputError, match="both driving_frames and driving_video"):
        extract(sample, dwpose, driving_video=InputImpl.VideoFromFile(str(clip)),
                driving_frames=torch.zeros(2, 8, 8, 3))
