"""sample_video behaviour on the tiny factory models (real loaders): determinism, seeds, short videos, the reference
frame, progress/interruption, the ControlNet window, guidance <= 1, dtypes, and the per-tile
features being what the official per-tile computation gives."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dispose_core.loading.dispose import load_dispose_controlnet
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.mimicmotion import load_mimicmotion
from dispose_core.models.svd_trunk import set_official_batch_quirk
from dispose_core.sampling.control import tile_control_features
from dispose_core.sampling.sampler import ControlInputs, SamplingInterrupted, sample_latents, sample_video
from dispose_core.types import DenseFlow, MotionField, PointEmbeddings

H, W, FRAMES = 128, 64, 6
FAST = dict(steps=2, tile_size=4, overlap=2, decode_chunk_size=4)


def _load(models_dir, dtype=torch.float32):
    return load_mimicmotion(BY_KEY["svd"].path_in(models_dir), BY_KEY["mimicmotion"].path_in(models_dir), dtype)


@pytest.fixture(scope="module")
def models(tiny_models_dir):
    """The real loaders on the tiny factory's files (random weights, real layouts)."""
    return _load(tiny_models_dir)


@pytest.fixture(scope="module")
def controlnet(tiny_models_dir, models):
    return load_dispose_controlnet(BY_KEY["dispose"].path_in(tiny_models_dir), models.unet)[0]


def _inputs(frames: int = FRAMES):
    rng = np.random.default_rng(1)
    return (rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            rng.integers(0, 256, (frames, H, W, 3), dtype=np.uint8))


def _control(net, frames: int = FRAMES, **kw) -> ControlInputs:
    g = torch.Generator().manual_seed(5)
    flow = lambda: MotionField(torch.randn(frames - 1, 2, H, W, generator=g) * 3)  # noqa: E731
    kp = torch.rand(frames, 18, 2, generator=g).numpy()
    subset = np.where(torch.rand(frames, 18, generator=g).numpy() < 0.2, -1, 1).astype(np.float32)
    points = PointEmbeddings(torch.randn(18, net.dims.point_embedding_channels, generator=g), kp, subset)
    return ControlInputs(net, flow(), DenseFlow(flow().flow), points, **kw)


def test_same_seed_same_video_other_seed_differs(models):
    ref, poses = _inputs()
    a = sample_video(models, ref, poses, seed=7, **FAST)
    b = sample_video(models, ref, poses, seed=7, **FAST)
    c = sample_video(models, ref, poses, seed=8, **FAST)
    assert a.shape == (FRAMES - 1, H, W, 3) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    d = sample_video(models, ref, poses, generator=torch.Generator().manual_seed(7), **FAST)
    assert torch.equal(a, d)


def test_reference_frame_kept_on_request(models):
    ref, poses = _inputs()
    full = sample_video(models, ref, poses, keep_reference_frame=True, **FAST)
    dropped = sample_video(models, ref, poses, **FAST)
    assert full.shape[0] == FRAMES and torch.equal(full[1:], dropped)


def test_video_shorter_than_tile_uses_one_tile(models):
    ref, poses = _inputs(frames=3)
    calls = []
    out = sample_video(models, ref, poses, steps=2, tile_size=16, overlap=6, decode_chunk_size=8,
                       progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (2, H, W, 3) and torch.isfinite(out).all()
    assert calls[-1] == (3, 3)  # 2 steps x 1 tile + 1 decode chunk


def test_progress_counts_calls_and_chunks(models):
    ref, poses = _inputs()
    calls = []
    sample_video(models, ref, poses, progress=lambda done, total: calls.append((done, total)), **FAST)
    tiles = 2  # 6 frames, tiles of 4 overlapping by 2 (official tiling): [0, 1, 2, 3], [0, 3, 4, 5]
    total = FAST["steps"] * tiles + -(-FRAMES // FAST["decode_chunk_size"])
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_should_stop_interrupts_before_the_next_call(models):
    ref, poses = _inputs()
    done = []
    with pytest.raises(SamplingInterrupted):
        sample_video(models, ref, poses, progress=lambda d, t: done.append(d),
                     should_stop=lambda: len(done) >= 2, **FAST)
    assert done == [1, 2]

    class HostInterrupt(Exception):
        pass

    def raising():
        raise HostInterrupt

    with pytest.raises(HostInterrupt):
        sample_video(models, ref, poses, should_stop=raising, **FAST)


def test_control_changes_result_and_empty_window_is_plain(models, controlnet):
    ref, poses = _inputs()
    plain = sample_latents(models, ref, poses, **{k: v for k, v in FAST.items() if k != "decode_chunk_size"})
    fast = {k: v for k, v in FAST.items() if k != "decode_chunk_size"}
    off = sample_latents(models, ref, poses, control=_control(controlnet, start_percent=0.5, end_percent=0.5),
                         **fast)
    on = sample_latents(models, ref, poses, control=_control(controlnet), **fast)
    late = sample_latents(models, ref, poses, control=_control(controlnet, start_percent=0.5), **fast)
    assert torch.equal(plain, off)
    assert (on - plain).abs().max() > 1e-3
    assert (late - on).abs().max() > 1e-3 and (late - plain).abs().max() > 1e-3


def test_points_without_cfg_and_without_points(models, controlnet):
    """Official: points need the CFG batch (B=1 crashes); here guidance <= 1 runs the conditional
    half alone with the same per-frame point features."""
    ref, poses = _inputs()
    fast = {k: v for k, v in FAST.items() if k != "decode_chunk_size"}
    no_cfg = sample_latents(models, ref, poses, control=_control(controlnet), min_guidance=1.0,
                            max_guidance=1.0, **fast)
    assert torch.isfinite(no_cfg).all()
    cfg_one = sample_latents(models, ref, poses, control=_control(controlnet), min_guidance=0.5,
                             max_guidance=1.5, **fast)
    assert (cfg_one - no_cfg).abs().max() > 1e-4
    control = _control(controlnet)
    control.points = None
    assert torch.isfinite(sample_latents(models, ref, poses, control=control, **fast)).all()


def test_tile_features_equal_official_per_tile_computation(controlnet):
    """Frame 0 = zero-flow feature, frame f = flow f-1: what the official encoder gives for each
    tile [0, i+1, ...] when fed flows idx[1:] - 1 with its own zero flow prepended."""
    control = _control(controlnet, frames=9)
    with torch.no_grad():
        # 9 frames, tiles of 4 overlapping by 2, as the official pipeline tiles them (the last
        # tile is moved back to end at the last frame); and one tile of scattered frames
        for idx in torch.tensor([[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7], [0, 6, 7, 8], [0, 2, 5, 8]]):
            features = tile_control_features(control, idx, H, W)
            flow_idx = idx[1:] - 1
            official = controlnet.encode_motion(control.dense_flow.flow[flow_idx][None],
                                                control.motion_field.flow[flow_idx][None])
            torch.testing.assert_close(features.motion, official, rtol=1e-5, atol=1e-5)
            maps = controlnet.encode_points(control.points.ref_point_emb,
                                            torch.as_tensor(control.points.keypoints[idx.numpy()]),
                                            torch.as_tensor(control.points.subset[idx.numpy()]), H, W)
            assert len(features.points) == len(maps)
            for ours, fresh in zip(features.points, maps):
                torch.testing.assert_close(ours, fresh, rtol=1e-5, atol=1e-5)


def test_float_inputs_and_bfloat16_models(models, tiny_models_dir):
    ref, poses = _inputs()
    fast = {k: v for k, v in FAST.items() if k != "decode_chunk_size"}
    as_uint8 = sample_latents(models, ref, poses, **fast)
    as_float = sample_latents(models, torch.from_numpy(ref).double() / 255, poses, **fast)
    torch.testing.assert_close(as_float, as_uint8, rtol=1e-4, atol=1e-4)

    half = _load(tiny_models_dir, torch.bfloat16)
    net = load_dispose_controlnet(BY_KEY["dispose"].path_in(tiny_models_dir), half.unet, torch.bfloat16)[0]
    control = _control(net)  # float32 flows and embeddings, float64 for the dense flow
    control.dense_flow = DenseFlow(control.dense_flow.flow.double())
    out = sample_video(half, ref, torch.from_numpy(poses).float() / 255, control=control, **FAST)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.shape == (FRAMES - 1, H, W, 3)


def test_plain_run_equals_per_half_unet_calls(models):
    """MimicMotion's own pipeline calls the UNet once per CFG half (no diffusers-0.27 batch mix-up);
    plain runs batch the halves with the mix-up off, so they give that result whatever the run's
    official_batch_quirk option."""
    unet, g = copy.deepcopy(models.unet).double(), torch.Generator().manual_seed(0)  # float64: no rounding
    x, ctx = torch.randn(2, 3, 8, 16, 8, generator=g).double(), torch.randn(2, 1, 32, generator=g).double()
    ids, pose = torch.tensor([[6.0, 127.0, 0.0]] * 2).double(), torch.randn(6, 32, 16, 8, generator=g).double()
    t = torch.tensor(1.2)
    gaps = {}
    with torch.no_grad():
        for flag in (False, True):
            set_official_batch_quirk(unet, flag)
            both = unet(x, t, ctx, ids, pose_latents=pose)
            halves = torch.cat([unet(x[i:i + 1], t, ctx[i:i + 1], ids[i:i + 1], pose_latents=pose[3 * i:3 * i + 3])
                                for i in range(2)])
            gaps[flag] = float((both - halves).norm() / halves.norm())
    assert gaps[False] < 1e-10 and gaps[True] > 1e-3

    # A plain run batches the halves but runs no ControlNet, so the run's quirk option (on by
    # default) must not change it, although the gap above shows the quirk would.
    ref, poses = _inputs()
    fast = {k: v for k, v in FAST.items() if k != "decode_chunk_size"}
    results = {flag: sample_latents(models, ref, poses, official_batch_quirk=flag, **fast) for flag in (True, False)}
    assert torch.equal(results[True], results[False])
