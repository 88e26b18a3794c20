"""DWPose Extract's frame sampling, fps output and person options, and the official-quirk
switches of the guidance nodes, run as ComfyUI's executor calls them (tiny models, ComfyUI
in-process). Expected frame indices and rates are the official rule written out by hand:
``range(0, n, sample_stride * max(1, int(fps / 24)))`` and ``fps / stride``."""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from dispose_core import errors
from host_utils import call_node, guidance_graph, model_dirs

pytestmark = pytest.mark.comfy
RES = 64
DRIVING = 20


@pytest.fixture(scope="module")
def sample():
    from dispose_core.sample import make_sample

    s = make_sample(num_frames=DRIVING)
    return {"reference": torch.from_numpy(s.reference).float()[None] / 255, "keypoints": s.pose_keypoint,
            "frames": torch.from_numpy(s.frames).float() / 255}


def extract(sample, **kwargs):
    args = dict(reference_image=sample["reference"], resolution=RES, align=False, pose_keypoint=sample["keypoints"])
    return call_node("DisPoseDWPoseExtract", **{**args, **kwargs})


@pytest.mark.parametrize("fps, kwargs, kept, fps_out", [
    (30.0, {}, list(range(0, 20, 2)), 15.0),
    (60.0, {}, [0, 4, 8, 12, 16], 15.0),
    (24.0, {}, list(range(0, 20, 2)), 12.0),
    (50.0, {}, [0, 4, 8, 12, 16], 12.5),
    (30.0, {"sample_stride": 3}, [0, 3, 6, 9, 12, 15, 18], 10.0),
    (30.0, {"skip_first_frames": 1, "max_frames": 3}, [1, 3, 5], 15.0),
])
def test_pose_keypoint_frames_follow_the_official_rule(sample, fps, kwargs, kept, fps_out):
    every, *_ = extract(sample, sample_stride=1, fps=30.0)
    poses, skeletons, keypoints, out_fps = extract(sample, fps=fps, **kwargs)
    assert poses.num_frames == len(kept) + 1 and skeletons.shape[0] == len(keypoints) == len(kept) + 1
    np.testing.assert_array_equal(poses.body[0], every.body[0])  # the reference is always kept
    np.testing.assert_array_equal(poses.body[1:], every.body[1:][kept])
    assert out_fps == fps_out


def test_defaults_keep_every_second_frame_at_15_fps(sample):
    """No fps linked: 30 fps assumed, so the official stride 2 and the official output rate 15."""
    poses, *_, fps = extract(sample)
    assert (poses.num_frames, fps) == (11, 15.0)


def test_separate_reference_keypoint_and_frame_count_check(sample):
    kp = sample["keypoints"]
    joined, *_ = extract(sample, align=True)
    split, *_, fps = extract(sample, align=True, pose_keypoint=kp[1:], reference_pose_keypoint=[kp[0]])
    assert split.num_frames == joined.num_frames == 11 and fps == 15.0
    assert abs(split.body - joined.body).max() < 1e-4
    with pytest.raises(errors.InputError, match="Frame counts do not match"):
        extract(sample, driving_frames=sample["frames"][:-1])  # 20 keypoint frames, 19 video frames
    extract(sample, driving_frames=sample["frames"])  # the same 20: fine


def test_dwpose_path_samples_the_video(tiny_models_dir, sample):
    with model_dirs(tiny_models_dir):
        (dwpose,) = call_node("DisPoseDWPoseLoader", detector="yolox_l.onnx", pose_model="dw-ll_ucoco_384.onnx")
    frames = sample["frames"][:9]
    poses, skeletons, keypoints, fps = call_node(
        "DisPoseDWPoseExtract", reference_image=sample["reference"], resolution=RES, align=False,
        driving_frames=frames, dwpose_model=dwpose, fps=60.0, empty_frames="interpolate",
        fit_on_empty_frames=False)
    assert poses.num_frames == 4 and skeletons.shape[0] == 4 and len(keypoints) == 4  # frames 0, 4, 8
    assert fps == 15.0
    with pytest.raises(errors.InputError, match="No driving frame left"):
        call_node("DisPoseDWPoseExtract", reference_image=sample["reference"], resolution=RES, align=False,
                  driving_frames=frames, dwpose_model=dwpose, skip_first_frames=9)


def two_people(keypoints: list[dict]) -> list[dict]:
    """The sample's keypoints with a second, smaller-scored person right of the first in the reference."""
    out = copy.deepcopy(keypoints)
    first = out[0]["people"][0]
    shift = 0.25 * out[0]["canvas_width"]
    other = {k: ([v + shift if i % 3 == 0 and v else v for i, v in enumerate(pts)] if pts else pts)
             for k, pts in first.items()}
    out[0]["people"].append(other)
    return out


def test_several_people_in_the_reference_are_logged_and_outlined(sample, caplog):
    from dispose_core.pose.render import render_poses

    with caplog.at_level(logging.WARNING):
        poses, skeletons, *_ = extract(sample, pose_keypoint=two_people(sample["keypoints"]))
    assert "shows 2 people" in poses.note and poses.note in caplog.text
    plain = torch.from_numpy(render_poses(poses)).float() / 255
    assert torch.equal(skeletons[1:], plain[1:])  # the driving skeletons are PoseNet's, untouched
    assert not torch.equal(skeletons[0], plain[0])  # the reference shows the outline
    single, single_skeletons, *_ = extract(sample)
    assert single.note == "" and torch.equal(single_skeletons, torch.from_numpy(render_poses(single)).float() / 255)


def test_person_choice_reaches_the_poses(sample):
    kp = two_people(sample["keypoints"])
    official, *_ = extract(sample, pose_keypoint=kp)
    right, *_ = extract(sample, pose_keypoint=kp, person="by_index", person_index=1)
    assert right.body[0, 1, 0] > official.body[0, 1, 0] + 0.1  # the neck of the right-hand person


def test_retarget_and_smoothing_change_only_when_asked(sample):
    base, *_ = extract(sample, align=True)
    again, *_ = extract(sample, align=True, retarget=False, smooth_window=0)
    np.testing.assert_array_equal(base.body, again.body)
    retargeted, *_ = extract(sample, align=True, retarget=True)
    smoothed, *_ = extract(sample, align=True, smooth_window=5, smooth_max_shift=50.0)
    assert not np.array_equal(retargeted.body[1:], base.body[1:])
    assert not np.array_equal(smoothed.body[1:], base.body[1:])
    with pytest.raises(errors.InputError, match="odd window"):
        extract(sample, smooth_window=4)


@pytest.fixture(scope="module")
def graph(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        g = guidance_graph(num_frames=5, resolution=128)  # a 192 x 128 canvas: not square
        (g["dift"],) = call_node("DisPoseDIFTLoader", sd15_folder="stable-diffusion-v1-5", precision="fp32")
    return g


def vanishing(poses):
    """The poses with body point 4 lost in driving frame 2 (sequence index 2)."""
    out = copy.deepcopy(poses)
    out.body_subset[2, 4] = -1
    out.body_score[2, 4] = 0.0
    return out


def test_drop_vanishing_reaches_the_sparse_field(graph):
    from dispose_core.motion.sparse_field import compute_motion_field

    poses = vanishing(graph["poses"])
    official, _ = call_node("DisPoseSparseMotionField", poses=poses, kernel_size=199, sigma=20.0)
    fixed, _ = call_node("DisPoseSparseMotionField", poses=poses, kernel_size=199, sigma=20.0, drop_vanishing=True)
    assert torch.equal(official.fields(), compute_motion_field(poses).fields())
    assert torch.equal(fixed.fields(), compute_motion_field(poses, drop_vanishing=True).fields())
    assert not torch.equal(fixed.fields(), official.fields())


def test_mask_invisible_reaches_cmp(graph):
    poses = vanishing(graph["poses"])
    args = dict(cmp_model=graph["cmp"], reference_image=graph["reference"], poses=poses, batch_size=4)
    official, _ = call_node("DisPoseCMPDenseFlow", **args)
    again, _ = call_node("DisPoseCMPDenseFlow", **args, mask_invisible=False)
    fixed, _ = call_node("DisPoseCMPDenseFlow", **args, mask_invisible=True)
    assert torch.equal(official.flow, again.flow)
    assert not torch.equal(fixed.flow[1], official.flow[1])  # driving frame 2, where the point is lost


def test_natural_orientation_reaches_dift(graph):
    args = dict(dift_model=graph["dift"], reference_image=graph["reference"], poses=graph["poses"],
                ensemble_size=1, seed=0)
    official, _ = call_node("DisPoseDIFTPointEmbed", **args)
    natural, _ = call_node("DisPoseDIFTPointEmbed", **args, natural_orientation=True)
    assert torch.equal(official.ref_point_emb, graph["points"].ref_point_emb)
    assert not torch.equal(natural.ref_point_emb, official.ref_point_emb)
