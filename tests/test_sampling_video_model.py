"""The video model as a host calls it (ComfyUI's batch layout): the CFG halves in either order, one
half alone, and the step of a sigma; on the tiny factory models with a DisPose ControlNet."""
from __future__ import annotations

import math

import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.sampling.pose_frames import PoseImages
from dispose_core.sampling.schedule import karras_sigmas
from dispose_core.sampling.video_model import (BATCH_QUIRK, CONTROL, TILES, ControlRun, MimicMotionVideoModel,
                                               step_of)
from test_sampling_sampler import FRAMES, H, W, _control, controlnet, models  # noqa: F401  (fixtures)

SIGMAS = karras_sigmas(2)


def _inputs(model: MimicMotionVideoModel) -> dict[str, torch.Tensor]:
    """Both halves' rows, (2F, ...): half 0 then half 1; the UNet's widths from its config."""
    g = torch.Generator().manual_seed(0)
    cfg = model.unet.config
    rows = lambda t: t.repeat_interleave(FRAMES, dim=0)  # noqa: E731  one row per frame
    return {"x": torch.randn(2 * FRAMES, 8, H // 8, W // 8, generator=g),
            "context": rows(torch.randn(2, 1, cfg.cross_attention_dim, generator=g)),
            "time_ids": rows(torch.tensor([[6.0, 127.0, 0.0]] * 2)),
            "pose_frames": [PoseImages(torch.randint(0, 256, (FRAMES, H, W, 3), generator=g, dtype=torch.uint8))
                            for _ in range(2)]}


def _call(model, inputs, halves, control, quirk=True) -> torch.Tensor:
    n = len(halves)
    options = {TILES: (4, 2), CONTROL: ControlRun(control), BATCH_QUIRK: quirk, "sample_sigmas": SIGMAS,
               "cond_or_uncond": halves}
    t = torch.full((n * FRAMES,), 0.25 * math.log(float(SIGMAS[0])))
    return model(inputs["x"], t, inputs["context"], transformer_options=options, time_ids=inputs["time_ids"],
                 pose_frames=inputs["pose_frames"], num_video_frames=FRAMES)


def _swap(rows: torch.Tensor | list) -> torch.Tensor | list:
    """The two halves exchanged: rows of a (2F, ...) tensor, or the per-half list of pose frames."""
    return rows[::-1] if isinstance(rows, list) else torch.cat([rows[FRAMES:], rows[:FRAMES]])


@torch.no_grad()
def test_the_halves_give_the_same_prediction_in_either_order(models, controlnet):
    """ComfyUI says which rows are cond (0) and uncond (1); the model puts them in the official
    [uncond, cond] order, so the batch quirk (which depends on the order) gives the same result."""
    model, control = MimicMotionVideoModel(models.unet, models.pose_net), _control(controlnet)
    official = _inputs(model)
    swapped = {k: _swap(v) for k, v in official.items()}
    expected = _call(model, official, [1, 0], control)
    assert torch.allclose(_swap(_call(model, swapped, [0, 1], control)), expected, rtol=1e-5, atol=1e-6)
    # taken literally, the swapped order gives another result: the reordering is what keeps it official
    assert not torch.allclose(_swap(_call(model, swapped, [1, 0], control)), expected, rtol=1e-3, atol=1e-4)


@torch.no_grad()
def test_one_half_alone_gets_the_corrected_attention(models, controlnet):
    """A host running the halves one at a time (low memory, MultiGPU CFG Split) gets the quirk-free
    prediction of that half: what the batched call gives with the quirk off."""
    model, control = MimicMotionVideoModel(models.unet, models.pose_net), _control(controlnet)
    both = _inputs(model)
    cond = {k: v[1:] if isinstance(v, list) else v[FRAMES:] for k, v in both.items()}
    batched = _call(model, both, [1, 0], control, quirk=False)[FRAMES:]
    assert torch.allclose(_call(model, cond, [0], control), batched, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(_call(model, both, [1, 0], control)[FRAMES:], batched, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("sigma, expected", [(float(SIGMAS[0]), (0, 2)), (float(SIGMAS[1]), (1, 2)),
                                             (float(SIGMAS[1]) * 1.5, (0, 2)), (1e-9, (1, 2))])
def test_step_of_a_sigma(sigma, expected):
    """A sampler's sigma maps to its step (between two sigmas: the earlier step), for the
    ControlNet's start/end percent."""
    assert step_of(sigma, SIGMAS) == expected
    assert step_of(sigma, None) is None


@torch.no_grad()
def test_poses_of_another_length_or_size_are_refused(models, controlnet):
    """Poses from another MimicMotion Conditioning than the latent: one line naming both shapes."""
    model, control = MimicMotionVideoModel(models.unet, models.pose_net), _control(controlnet)
    inputs = _inputs(model)
    short = PoseImages(torch.zeros(FRAMES - 1, H, W, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match=f"The poses are {FRAMES - 1} frames of {W}x{H} but the video latent "
                                         f"{FRAMES} frames of {W}x{H}"):
        _call(model, dict(inputs, pose_frames=[None, short]), [1, 0], control)
    narrow = PoseImages(torch.zeros(FRAMES, H, W // 2, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match=f"frames of {W // 2}x{H} but"):
        _call(model, dict(inputs, pose_frames=[narrow, None]), [1, 0], control)
