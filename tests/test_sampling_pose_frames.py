"""PoseNet's frames are drawn per tile from the keypoints: the same pixels as the whole video's
rendering, the same sampled latents as pose images given whole, and nothing per frame kept."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.pose.render import render_poses
from dispose_core.sampling.pose_frames import (FrameSubset, PoseImages, RenderedPoses, pose_frames,
                                               prefetched_tiles)
from dispose_core.sampling.sampler import sample_latents
from dispose_core.sampling.tiling import tile_indices
from motion_fixtures import random_poses
from test_sampling_sampler import FAST, H, W, models  # noqa: F401  (fixture)

FRAMES = 9


def test_a_tile_is_drawn_as_the_whole_video_draws_those_frames():
    poses = random_poses(FRAMES, H, W, seed=3)
    whole = render_poses(poses)
    for idx in ([0, 1, 2, 3], [0, 6, 7, 8], [0, 2, 5, 8]):
        tile = RenderedPoses(poses).frames(idx)
        assert tile.dtype == torch.uint8 and tile.shape == (len(idx), H, W, 3)
        assert np.array_equal(tile.numpy(), whole[idx])
    assert whole[1:].any()  # the skeletons are not blank, so the comparison means something


def test_subsets_images_and_conversion():
    images = torch.randint(0, 256, (FRAMES, H, W, 3), dtype=torch.uint8)
    source = pose_frames(images)
    assert isinstance(source, PoseImages) and source.num_frames == FRAMES and source.size == (H, W)
    window = FrameSubset(source, (0, 4, 5, 6))
    assert window.num_frames == 4 and window.size == (H, W)
    assert torch.equal(window.frames([0, 2, 3]), images[[0, 5, 6]])
    assert isinstance(pose_frames(random_poses(3, H, W)), RenderedPoses)
    assert isinstance(pose_frames(images.numpy()), PoseImages)
    with pytest.raises(InputError, match=r"pose_images must be \(F, H, W, 3\)"):
        pose_frames(images[..., :2])
    with pytest.raises(InputError, match="uint8 or float"):
        pose_frames(images.int())


def test_tiles_come_in_order_with_the_next_one_prepared():
    images = torch.arange(FRAMES).view(FRAMES, 1, 1, 1).expand(FRAMES, 2, 2, 3).to(torch.uint8)
    tiles = tile_indices(FRAMES, 4, 2)
    got = [frames[0][:, 0, 0, 0].tolist() for frames in prefetched_tiles([PoseImages(images)], tiles)]
    assert got == tiles.tolist()
    assert list(prefetched_tiles([], tiles)) == [[]] * len(tiles)


def test_sampling_from_keypoints_equals_sampling_from_their_images(models):
    """The CLI and the nodes hand the sampler keypoints; recorded runs hand it images."""
    poses = random_poses(FRAMES, H, W, seed=5)
    reference = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    fast = {k: v for k, v in FAST.items() if k != "decode_chunk_size"}
    from_images = sample_latents(models, reference, render_poses(poses), **fast)
    from_keypoints = sample_latents(models, reference, poses, **fast)
    assert torch.equal(from_keypoints, from_images)
