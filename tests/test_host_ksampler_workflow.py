"""Host test of workflows/dispose_ksampler_api.json (issue 14, item 9): the full DisPose graph sampled by
core KSampler and decoded by core VAE Decode runs in a real ComfyUI server and saves the video.

The server is the single-file one of test_host_comfyui (svd_xt_1_1.safetensors in checkpoints/, no
SVD folder). Core's ImageOnlyCheckpointLoader cannot build the tiny file (ComfyUI sizes SVD by the
published widths), so the test-only DisPoseTestTinyCoreSVD stands in for it: the same CLIP_VISION
and VAE classes, from the same file.
"""
from __future__ import annotations

import pytest

from test_host_comfyui import (KEPT_FRAMES, KEPT_RATE, run_ok, saved_videos, single_file_server,  # noqa: F401
                               video_rate, video_shape, workflow)

pytestmark = pytest.mark.host
FAST = {"KSampler": {"steps": 2}, "DisPoseMimicMotionTiles": {"tile_size": 8, "overlap": 2}}
CORE_SVD_OUTPUTS = {1: 0, 2: 1}  # ImageOnlyCheckpointLoader's CLIP_VISION, VAE -> the test node's


def tiny_core_svd(prompt: dict) -> dict:
    """``prompt`` with its ImageOnlyCheckpointLoader replaced by DisPoseTestTinyCoreSVD, links rewired."""
    (loader,) = [k for k, n in prompt.items() if n["class_type"] == "ImageOnlyCheckpointLoader"]
    prompt[loader] = {"class_type": "DisPoseTestTinyCoreSVD", "inputs": dict(prompt[loader]["inputs"])}
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and value[0] == loader:
                node["inputs"][name] = [loader, CORE_SVD_OUTPUTS[value[1]]]
    return prompt


def test_ksampler_workflow_saves_the_video(single_file_server):
    """The 9-frame 8 fps driving.mp4 -> 5 poses + the reference: KSampler samples 6 latent frames,
    ImageFromBatch drops the reference, the video has 5 frames of 64x64 at 8 / 2 = 4 fps."""
    entry = run_ok(single_file_server, tiny_core_svd(workflow("dispose_ksampler", **FAST)))
    (video,) = saved_videos(single_file_server, entry)
    assert "video/dispose_ksampler_" in str(video)
    assert video_shape(video) == (KEPT_FRAMES, 64, 64)
    assert video_rate(video) == KEPT_RATE
