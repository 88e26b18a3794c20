"""Driving-pose alignment to the reference (G5b) and its rendering."""
from __future__ import annotations

import numpy as np
import pytest

from dispose_core.errors import InputError
from dispose_core.pose.align import Alignment, fit_alignment, fit_points, single_person_bodies
from dispose_core.pose.render import draw_pose
from golden import golden_params, require
from test_pose_dwpose import close
from test_pose_render import assert_image_equal, frame_from


@golden_params("G5b")
def test_video_pose_align_golden(golden_name):
    case = require(golden_name)
    t, side, tol = case.tensors, case.sidecar, case.sidecar["tolerance"]
    n = len(t["sampled_frame_indices"])
    ref = frame_from(t, "ref_")
    frames = [frame_from(t, f"in{k}_") for k in range(n)]
    ref_hw = tuple(int(v) for v in t["ref_image_hw"])
    frame_hw = tuple(int(v) for v in t["video_frame_hw"])

    assert fit_points(ref.subset[0]) == side["fit"]["reference_points_used"]
    used, bodies = single_person_bodies(frames)
    assert used == side["fit"]["single_person_frames_used"]
    fit = fit_alignment(ref.bodies()[0], ref.subset[0], bodies, ref_hw, frame_hw)
    np.testing.assert_allclose(fit.scale[1], side["fit"]["ay"], rtol=1e-6)
    np.testing.assert_allclose(fit.offset[1], side["fit"]["by"], atol=1e-6)
    np.testing.assert_allclose([fit.scale[1], fit.offset[1]], t["polyfit_ay_by"].numpy(), atol=1e-6)

    h, w = ref_hw
    assert_image_equal(draw_pose(ref, h, w), t["ref_pose_image"].numpy())
    for k, frame in enumerate(frames):
        out = frame.mapped(fit.scale, fit.offset)
        close(out.candidate, t[f"out{k}_bodies_candidate"], tol["out*_bodies_candidate"])
        close(out.faces, t[f"out{k}_faces"], tol["out*_faces"])
        close(out.hands, t[f"out{k}_hands"], tol["out*_hands"])
        assert_image_equal(draw_pose(out, h, w), t["video_pose_images"][k].numpy())


def test_fit_recovers_a_known_map_on_non_square_frames():
    rng = np.random.default_rng(0)
    drv = rng.uniform(0.2, 0.8, (5, 18, 2))
    ref_hw, frame_hw = (1024, 576), (720, 1280)
    ay, by, bx = 0.8, 0.1, -0.05
    ax = ay / (frame_hw[0] / frame_hw[1] / ref_hw[0] * ref_hw[1])
    ref = drv[0] * [ax, ay] + [bx, by]
    fit = fit_alignment(ref, np.arange(18.0), drv[:1], ref_hw, frame_hw)
    np.testing.assert_allclose(fit.scale, [ax, ay])
    np.testing.assert_allclose(fit.offset, [bx, by], atol=1e-12)
    np.testing.assert_allclose(fit.apply(drv[0]), ref)


def test_fit_errors_and_degenerate_input():
    body = np.full((18, 2), 0.5)
    with pytest.raises(InputError, match="reference"):
        fit_alignment(body, -np.ones(18), body[None], (64, 64), (64, 64))
    with pytest.raises(InputError, match="driving"):
        fit_alignment(body, np.arange(18.0), np.zeros((0, 18, 2)), (64, 64), (64, 64))
    flat = fit_alignment(body, np.arange(18.0), body[None], (64, 64), (64, 64))
    np.testing.assert_array_equal(flat.scale, Alignment.identity().scale)
    np.testing.assert_array_equal(flat.offset, Alignment.identity().offset)
