"""Reference-anchored sparse flow for CMP (G2) and its quirks/fix flag."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.motion.sparse_flow import CMP_SIZE, cmp_image, cmp_sparse_flow, reference_sparse_flow
from dispose_core.motion.tracks import track_positions
from golden import golden_params, require
from motion_fixtures import densify_coo, make_poses, random_poses


def assert_matches_coo(flow, mask, coo, atol):
    steps, _, h, w = flow.shape
    exp_flow, exp_mask = densify_coo(coo, steps, h, w)
    assert torch.equal(mask, exp_mask), "the set of written pixels differs"
    settled = torch.ones_like(exp_mask, dtype=torch.bool)
    amb = coo[coo[:, 5] == 1]
    settled[amb[:, 0].long(), :, amb[:, 1].long(), amb[:, 2].long()] = False
    torch.testing.assert_close(flow[settled], exp_flow[settled], atol=atol, rtol=0)


@golden_params("G2")
def test_golden_sparse_flow(golden_name):
    case = require(golden_name)
    t, tol = case.tensors, case.sidecar["tolerance"]
    h, w = (int(v) for v in t["size_hw"])
    poses = make_poses(t["keypoints"], t["subset"], h, w)

    pos, _ = track_positions(poses)
    torch.testing.assert_close(pos.float(), t["poses_px"], atol=1e-4, rtol=0)

    flow, mask = reference_sparse_flow(poses)
    assert flow.shape == (poses.num_frames - 1, 2, h, w) and mask.dtype == torch.uint8
    assert_matches_coo(flow, mask, t["sparse_flow_coo"], tol["sparse_flow_coo"]["atol"])

    flow384, mask384 = cmp_sparse_flow(poses).dense()
    assert_matches_coo(flow384, mask384, t["sparse_flow_384_coo"], tol["sparse_flow_384_coo"]["atol"])

    reference = t["reference_image_u8"].permute(2, 0, 1).float() / 255
    image = cmp_image(reference)
    assert torch.equal((image * 255).round().to(torch.uint8).permute(1, 2, 0), t["first_frame_384_u8"])


def test_invisible_points_quirk_and_fix():
    rng = np.random.default_rng(1)
    body = rng.uniform(0.2, 0.8, size=(3, 18, 2)).astype(np.float32)
    subset = np.tile(np.arange(18, dtype=np.float32), (3, 1))
    subset[0, 5] = subset[0, 6] = -1  # missing in the reference: both anchor at pixel (0, 0)
    subset[2, 9] = -1  # missing in driving frame 2: flow towards the origin
    poses = make_poses(body, subset, 120, 90)
    flow, mask = reference_sparse_flow(poses)
    ref = track_positions(poses)[0][0]
    assert mask[0, :, 0, 0].tolist() == [1, 1]
    torch.testing.assert_close(flow[0, :, 0, 0].double(), torch.tensor([body[1, 6, 0] * 90, body[1, 6, 1] * 120],
                                                                        dtype=torch.float64), atol=1e-4, rtol=0)
    r, c = int(ref[9, 1]), int(ref[9, 0])
    torch.testing.assert_close(flow[1, :, r, c].double(), -ref[9], atol=1e-4, rtol=0)

    fixed_flow, fixed_mask = reference_sparse_flow(poses, mask_invisible=True)
    assert fixed_mask[:, :, 0, 0].sum() == 0
    assert fixed_mask[1, 0, r, c] == 0 and fixed_mask[0, 0, r, c] == 1
    assert int(fixed_mask[0, 0].sum()) == 16 and int(fixed_mask[1, 0].sum()) == 15


def test_non_square_clamps_rows_to_height_and_cols_to_width():
    # a point at the bottom-right corner of a wide and of a tall canvas must stay in the corner
    for h, w in [(20, 50), (50, 20)]:
        body = np.full((2, 18, 2), 0.5, np.float32)
        body[:, 0] = [1.5, 1.5]
        poses = make_poses(body, np.tile(np.arange(18, dtype=np.float32), (2, 1)), h, w)
        _, mask = reference_sparse_flow(poses)
        assert mask[0, 0, h - 1, w - 1] == 1
        _, mask384 = cmp_sparse_flow(poses).dense()
        assert mask384[0, 0, int((h - 1) / h * CMP_SIZE), int((w - 1) / w * CMP_SIZE)] == 1


def test_duplicate_anchor_later_index_wins():
    body = np.full((2, 18, 2), 0.5, np.float32)
    body[1, :, 0] += np.arange(18, dtype=np.float32) * 0.01
    poses = make_poses(body, np.tile(np.arange(18, dtype=np.float32), (2, 1)), 100, 100)
    flow, mask = reference_sparse_flow(poses)
    assert int(mask.sum()) == 2
    assert flow[0, 0, 50, 50].item() == pytest.approx(17 * 0.01 * 100, abs=1e-3)


def test_batches_equal_whole_and_square_canvas_is_unscaled():
    poses = random_poses(7, CMP_SIZE, CMP_SIZE, seed=5)
    full = reference_sparse_flow(poses)
    points = cmp_sparse_flow(poses)
    torch.testing.assert_close(points.dense(2, 5)[0], full[0][2:5])
    assert torch.equal(points.dense(2, 5)[1], full[1][2:5])
    image = torch.rand(3, CMP_SIZE, CMP_SIZE)
    assert cmp_image(image) is image


def test_one_frame_and_bad_image():
    with pytest.raises(InputError):
        reference_sparse_flow(random_poses(1, 30, 20))
    with pytest.raises(InputError):
        cmp_image(torch.rand(30, 20))
