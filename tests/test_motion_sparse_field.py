"""Sparse motion field (G1): tracks, impulses, separable reflect-101 blur vs cv2, edge cases."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.motion.gaussian import blur_matrix, gaussian_kernel_1d
from dispose_core.motion.sparse_field import compute_motion_field, step_impulses
from dispose_core.motion.tracks import track_positions
from dispose_core.types import MotionField
from golden import golden_params, require
from motion_fixtures import make_poses, random_poses


def official_blur(impulse_map: np.ndarray, kernel_size: int, sigma: float) -> np.ndarray:
    """The official path: cv2.filter2D with the full 2-D kernel on an (H, W, C) float64 map."""
    g = gaussian_kernel_1d(kernel_size, sigma).numpy()
    return cv2.filter2D(impulse_map, -1, np.outer(g, g))


def dense_impulses(poses, **kw) -> np.ndarray:
    """The official pre-blur maps (F-1, H, W, 2) float64 rebuilt from our impulses."""
    imp = step_impulses(poses, **kw)
    out = np.zeros((imp.values.shape[0], poses.height, poses.width, 2))
    for k, j in zip(*torch.nonzero(imp.keep, as_tuple=True)):
        out[k, imp.rows[k, j], imp.cols[k, j]] = imp.values[k, j].numpy()
    return out


@golden_params("G1")
def test_golden_traj_flow(golden_name):
    case = require(golden_name)
    t, tol = case.tensors, case.sidecar["tolerance"]
    h, w = (int(v) for v in t["size_hw"])
    poses = make_poses(t["keypoints"], t["subset"], h, w, score=t["score"])

    pos, visible = track_positions(poses)
    torch.testing.assert_close(
        pos.permute(1, 0, 2).float(), t["track_points"], atol=tol["track_points"]["atol"], rtol=0
    )
    expected_subset = torch.where(visible.T, torch.arange(18.0)[:, None], torch.tensor(-1.0))
    assert torch.equal(expected_subset, t["track_subset"])

    imp = step_impulses(poses)
    nz = imp.keep & (imp.values != 0).any(-1)
    k, j = torch.nonzero(nz, as_tuple=True)
    ours = torch.stack([k.double(), imp.rows[k, j].double(), imp.cols[k, j].double(),
                        imp.values[k, j, 0], imp.values[k, j, 1]], dim=1).float()
    exp = t["drag_points"]
    order = lambda m: m[np.lexsort((m[:, 2].numpy(), m[:, 1].numpy(), m[:, 0].numpy()))]  # noqa: E731
    ours, exp = order(ours), order(exp)
    assert ours.shape == exp.shape
    assert torch.equal(ours[:, :3], exp[:, :3])
    torch.testing.assert_close(ours[:, 3:], exp[:, 3:], atol=tol["drag_points"]["atol"], rtol=0)

    ks = t["gaussian_kernel"].shape[0]
    g = gaussian_kernel_1d(ks, 20.0)
    torch.testing.assert_close(torch.outer(g, g).float(), t["gaussian_kernel"], atol=1e-9, rtol=1e-5)

    field = compute_motion_field(poses, kernel_size=ks, sigma=20.0)
    assert field.flow is None  # held as its impulses, expanded on request
    expanded = field.fields()
    expected = t["traj_flow"][0]
    assert expanded.shape == expected.shape and expanded.dtype == torch.float32
    torch.testing.assert_close(expanded, expected, atol=tol["traj_flow"]["atol"], rtol=tol["traj_flow"]["rtol"])
    steps = expected.shape[0]
    per_frame = torch.cat([field.fields(s, s + 1) for s in range(steps)])  # what a chunk of one frame gets
    torch.testing.assert_close(per_frame, expected, atol=tol["traj_flow"]["atol"], rtol=tol["traj_flow"]["rtol"])


@pytest.mark.parametrize(
    "h,w,ks,sigma",
    [(64, 48, 199, 20.0), (37, 90, 199, 20.0), (5, 3, 199, 20.0), (1, 9, 199, 20.0), (40, 40, 31, 4.5)],
)
def test_separable_blur_equals_cv2_filter2d(h, w, ks, sigma):
    rng = np.random.default_rng(h * 1000 + w)
    x = np.zeros((h, w))
    for _ in range(6):
        x[rng.integers(h), rng.integers(w)] = rng.normal() * 20
    expected = cv2.filter2D(x, -1, np.outer(*(2 * [gaussian_kernel_1d(ks, sigma).numpy()])))
    by = blur_matrix(h, ks, sigma, dtype=torch.float64)
    bx = blur_matrix(w, ks, sigma, dtype=torch.float64)
    np.testing.assert_allclose((by @ torch.from_numpy(x) @ bx.T).numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("h,w", [(96, 64), (50, 130), (12, 7)])
def test_field_equals_official_path_on_random_poses(h, w):
    poses = random_poses(6, h, w, seed=h + w, invisible=0.2)
    ours = compute_motion_field(poses, kernel_size=51, sigma=9.0).fields()
    dense = dense_impulses(poses)
    expected = np.stack([official_blur(m, 51, 9.0) for m in dense]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=1e-4)


def test_later_index_overwrites_and_vanishing_quirk():
    body = np.full((2, 18, 2), 0.5, np.float32)  # every point on the same pixel
    body[1, :, 0] += np.linspace(0.01, 0.18, 18, dtype=np.float32)
    subset = np.tile(np.arange(18, dtype=np.float32), (2, 1))
    subset[1, 17] = -1  # the winning point vanishes in the next frame
    poses = make_poses(body, subset, 100, 80)
    imp = step_impulses(poses)
    assert imp.keep[0].tolist() == [False] * 17 + [True]
    # official quirk: a vanishing point jumps towards pixel (0, 0)
    torch.testing.assert_close(imp.values[0, 17], -torch.tensor([0.5 * 80, 0.5 * 100], dtype=torch.float64))
    fixed = step_impulses(poses, drop_vanishing=True)
    assert fixed.keep[0].tolist() == [False] * 16 + [True, False]
    assert fixed.values[0, 16, 0] > 0


def test_one_driving_frame_and_too_few_frames():
    poses = random_poses(2, 40, 30)
    assert compute_motion_field(poses, kernel_size=9, sigma=2.0).fields().shape == (1, 2, 40, 30)
    with pytest.raises(InputError, match="at least one driving frame"):
        compute_motion_field(random_poses(1, 40, 30))


def test_keypoints_outside_frame_are_clipped():
    body = np.array([[[1.7, -0.4]] * 18, [[1.9, -0.2]] * 18], np.float32)
    subset = np.tile(np.arange(18, dtype=np.float32), (2, 1))
    pos, _ = track_positions(make_poses(body, subset, 50, 40))
    assert pos[0, 0].tolist() == [39.0, 0.0]
    imp = step_impulses(make_poses(body, subset, 50, 40))
    assert (imp.values[imp.keep] == 0).all()  # both frames clip to the same border pixel


def test_nan_coordinates_and_scores():
    poses = random_poses(4, 60, 45, seed=3)
    reference = compute_motion_field(poses, kernel_size=21, sigma=5.0).fields()
    poses.body_score[:] = np.nan
    assert torch.equal(compute_motion_field(poses, kernel_size=21, sigma=5.0).fields(), reference)
    poses.body_score[:] = 0
    assert torch.equal(compute_motion_field(poses, kernel_size=21, sigma=5.0).fields(), reference)
    poses.body[1, 3] = np.nan  # visible but NaN: treated as not visible instead of crashing
    _, visible = track_positions(poses)
    assert not visible[1, 3]
    assert torch.isfinite(compute_motion_field(poses, kernel_size=21, sigma=5.0).fields()).all()


@pytest.mark.parametrize("ks,sigma", [(198, 20.0), (0, 20.0), (-3, 20.0), (2.5, 20.0), (199, 0.0), (199, float("nan"))])
def test_bad_kernel_raises_input_error(ks, sigma):
    with pytest.raises(InputError):
        compute_motion_field(random_poses(2, 20, 20), kernel_size=ks, sigma=sigma)


def test_kernel_size_one_is_identity():
    poses = random_poses(3, 30, 20)
    flow = compute_motion_field(poses, kernel_size=1, sigma=1.0).fields()
    expected = torch.from_numpy(dense_impulses(poses)).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(flow, expected)


def test_frame_without_person_matches_official_path():
    poses = random_poses(4, 48, 40, seed=8)
    poses.body_subset[2] = -1  # nobody detected in frame 2
    imp = step_impulses(poses)
    assert not imp.keep[2].any()  # nothing starts from the empty frame
    # official quirk: every point visible in frame 1 jumps to the origin in step 1 -> 2
    jumped = imp.keep[1]
    start = track_positions(poses)[0][1]
    torch.testing.assert_close(imp.values[1][jumped], -start[jumped])
    ours = compute_motion_field(poses, kernel_size=31, sigma=6.0).fields()
    expected = np.stack([official_blur(m, 31, 6.0) for m in dense_impulses(poses)]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=1e-4)


def test_field_is_kept_compact_and_expanded_in_chunks():
    poses = random_poses(8, 50, 30, seed=5, invisible=0.2)
    field = compute_motion_field(poses, kernel_size=21, sigma=5.0)
    assert field.flow is None and (field.num_frames, field.height, field.width) == (8, 50, 30)
    expected = np.stack([official_blur(m, 21, 5.0) for m in dense_impulses(poses)]).transpose(0, 3, 1, 2)
    chunks = torch.cat([field.fields(s, min(s + 3, 7)) for s in range(0, 7, 3)])
    np.testing.assert_allclose(chunks.numpy(), expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(chunks, field.fields())  # each step is computed on its own: chunking changes nothing


def test_motion_field_holds_a_given_field_or_impulses():
    given = torch.randn(3, 2, 8, 6)
    field = MotionField(given)
    assert (field.num_frames, field.height, field.width) == (4, 8, 6) and torch.equal(field.fields(1, 3), given[1:3])
    with pytest.raises(InputError, match="exactly one"):
        MotionField()
