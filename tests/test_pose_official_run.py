"""The default pose path is the official run end to end (golden G5b, from get_video_pose).

A 13-frame 30 fps "video" whose frames encode their index goes through the official frame
sampling (frames.py), then DWPose extraction with the official defaults (person, empty frames,
alignment) fed the recorded per-frame DWPose outputs; the skeleton images must equal the official
ones pixel for pixel, including the sampled frame that shows two people (both drawn).
"""
from __future__ import annotations

import numpy as np
import torch

from dispose_core.frames import FrameSampling
from dispose_core.pose.extract import extract_poses
from dispose_core.pose.render import render_poses
from dispose_core.video import image_frames
from golden import golden_params, require
from test_pose_dwpose import close
from test_pose_render import assert_image_equal, frame_from

REFERENCE_MARK = 255


class RecordedImage:
    """What DWPose found in one image: the recorded official dict, and one box per person."""

    def __init__(self, frame):
        self._frame = frame
        self.boxes = np.ones((frame.num_people, 4))

    def frame(self):
        return self._frame


@golden_params("G5b")
def test_default_settings_give_the_official_frames_people_and_skeletons(golden_name):
    case = require(golden_name)
    t, side = case.tensors, case.sidecar
    video = side["video"]
    sampled = [int(i) for i in t["sampled_frame_indices"]]
    recorded = {source: frame_from(t, f"in{k}_") for k, source in enumerate(sampled)}
    ref_hw = tuple(int(v) for v in t["ref_image_hw"])
    frame_hw = tuple(int(v) for v in t["video_frame_hw"])

    source = torch.arange(video["num_frames"], dtype=torch.float32).reshape(-1, 1, 1, 1) / 255
    sampling = FrameSampling(sample_stride=int(video["sample_stride_arg"]))
    frames = image_frames(source.expand(-1, *frame_hw, 3), video["fps"], sampling)
    # the official run plays the kept frames at the source rate over its effective stride
    assert frames.fps == video["fps"] / video["effective_stride"]
    seen = []

    def detector(images):
        out = []
        for img in images:
            index = int(img[0, 0, 0])
            seen.append("ref" if index == REFERENCE_MARK else index)
            out.append(RecordedImage(frame_from(t, "ref_") if index == REFERENCE_MARK else recorded[index]))
        return out

    reference = np.full((*ref_hw, 3), REFERENCE_MARK, np.uint8)
    poses = extract_poses(detector, reference, frames)
    assert seen == ["ref"] + sampled and poses.num_frames == 1 + len(sampled)

    tol = side["tolerance"]["out*_bodies_candidate"]
    for k in range(len(sampled)):  # the chosen person (flows, CMP, DIFT) is the official person 0
        close(poses.body[k + 1], t[f"out{k}_bodies_candidate"][:18], tol)
    images = render_poses(poses)
    assert_image_equal(images[0], t["ref_pose_image"].numpy())
    for k in range(len(sampled)):
        assert_image_equal(images[k + 1], t["video_pose_images"][k].numpy())
    for k in video["multi_person_sampled_frames"]:  # every person of a multi-person frame is kept
        assert poses.scene[k + 1].num_people == recorded[sampled[k]].num_people > 1
