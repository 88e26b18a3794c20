"""MimicMotion/DisPose loader, control and sampler nodes run in-process with ComfyUI (as its
executor calls them) on the tiny random-weight models: frame counts and sizes, determinism
(ComfyUI's cache may reuse results), control switches, bad wiring, interrupts."""
from __future__ import annotations

import pytest
import torch

from dispose_core import errors
from host_utils import call_node, guidance_graph, load_pack, model_dirs

pytestmark = pytest.mark.comfy
FAST = dict(seed=1, steps=2, min_guidance=2.0, max_guidance=2.0, noise_aug=0.0, fps=7, motion_bucket_id=127,
            tile_size=6, overlap=2, decode_chunk_size=4)  # one tile: the 5 driving frames + reference
STRENGTHS = dict(strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.0, end_percent=1.0)


@pytest.fixture(scope="module")
def bridge():
    return load_pack().nodes.comfy_bridge


@pytest.fixture(scope="module")
def graph(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        g = guidance_graph(num_frames=5)
        g["mm"], _ = call_node("DisPoseMimicMotionLoader", svd_folder="stable-video-diffusion-img2vid-xt-1-1",
                               mimicmotion_checkpoint="MimicMotion_1-1.pth", precision="auto")
        (g["cn"],) = call_node("DisPoseControlNetLoader", mimicmotion_model=g["mm"],
                               dispose_checkpoint="DisPose.pth", precision="auto")
    (g["control"],) = call_node("DisPoseHybridControlNetApply", dispose_controlnet=g["cn"], motion_field=g["motion"],
                                dense_flow=g["flow"], point_embeddings=g["points"], **STRENGTHS)
    return g


def sample(graph, **kwargs) -> torch.Tensor:
    args = dict(mimicmotion_model=graph["mm"], reference_image=graph["reference"], poses=graph["poses"], **FAST)
    args.update(kwargs)
    frames, _ = call_node("DisPoseMimicMotionSampler", **args)
    return frames


@pytest.fixture(scope="module")
def runs(graph) -> dict[str, torch.Tensor]:
    """Sampler outputs shared by the tests below (each run takes seconds on a CPU)."""
    (ablated,) = call_node("DisPoseHybridControlNetApply", dispose_controlnet=graph["cn"],
                           motion_field=graph["motion"], dense_flow=graph["flow"], point_embeddings=graph["points"],
                           **{**STRENGTHS, "motion_strength": 0.0, "point_strength": 0.0})
    return {"plain": sample(graph), "again": sample(graph), "seed2": sample(graph, seed=2),
            "control": sample(graph, control=graph["control"]), "ablated": sample(graph, control=ablated)}


def test_frames_match_the_driving_video(graph, runs):
    poses = graph["poses"]
    for frames in runs.values():
        assert tuple(frames.shape) == (poses.num_frames - 1, poses.height, poses.width, 3)
        assert frames.dtype == torch.float32 and 0.0 <= float(frames.min()) <= float(frames.max()) <= 1.0


def test_deterministic_per_seed_and_control_matters(runs):
    assert torch.equal(runs["plain"], runs["again"])  # ComfyUI's cache may reuse a result
    assert not torch.equal(runs["plain"], runs["seed2"])
    assert not torch.equal(runs["plain"], runs["control"])


def test_motion_and_point_switches_change_the_result(runs):
    assert not torch.equal(runs["control"], runs["ablated"])


def test_poses_of_another_length_are_refused(graph):
    poses, *_ = call_node("DisPoseDWPoseExtract", reference_image=graph["reference"], resolution=64, align=True,
                          pose_keypoint=graph["keypoints_in"][:-2], sample_stride=1)
    with pytest.raises(errors.InputError, match="Frame counts do not match"):
        sample(graph, poses=poses, control=graph["control"])


def test_interrupt_stops_sampling_and_frees_memory(graph, bridge, monkeypatch):
    class Interrupted(Exception):
        pass

    calls = {"checks": 0, "freed": 0}

    def stop():
        calls["checks"] += 1
        if calls["checks"] == 2:
            raise Interrupted

    monkeypatch.setattr(bridge, "should_stop", stop)
    monkeypatch.setattr(bridge, "free_memory", lambda: calls.__setitem__("freed", calls["freed"] + 1))
    with pytest.raises(Interrupted):
        sample(graph)
    assert calls == {"checks": 2, "freed": 1}


def test_progress_counts_steps_tiles_and_decoding(graph, bridge, monkeypatch):
    seen = []
    monkeypatch.setattr(bridge, "progress_bar", lambda total=1: lambda done, total: seen.append((done, total)))
    sample(graph)
    assert graph["poses"].num_frames == 6
    # 6 frames in tiles of 6: one tile; 2 steps x 1 tile + 2 decode chunks of at most 4 frames
    total = 2 * 1 + 2
    assert seen[-1] == (total, total) and len(seen) == total
