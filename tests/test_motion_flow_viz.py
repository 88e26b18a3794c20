"""Flow colour visualisation."""
from __future__ import annotations

import math

import pytest
import torch

from dispose_core.errors import InputError
from dispose_core.motion.flow_viz import color_wheel, flow_to_color
from dispose_core.types import DenseFlow, MotionField


def _unit(angle: float, length: float = 1.0) -> torch.Tensor:
    return torch.tensor([math.cos(angle), math.sin(angle)]).view(1, 2, 1, 1) * length


def test_shape_range_and_rest_is_white():
    flow = torch.randn(3, 2, 10, 7) * 5
    flow[:, :, 0, 0] = 0
    img = flow_to_color(flow)
    assert img.shape == (3, 10, 7, 3) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1
    assert torch.equal(img[:, 0, 0], torch.ones(3, 3))


def test_directions_have_distinct_hues_and_are_saturated_at_max():
    angles = [k * math.pi / 4 for k in range(8)]
    colors = torch.cat([flow_to_color(_unit(a)) for a in angles]).view(8, 3)
    assert torch.cdist(colors, colors).add(torch.eye(8)).min() > 0.2
    assert (colors.min(dim=1).values < 1e-6).all()  # at the max magnitude one channel is zero
    assert torch.allclose(flow_to_color(_unit(0.0)).view(3), flow_to_color(_unit(0.0, 9.0)).view(3))
    assert color_wheel().shape == (55, 3)


def test_batch_normalisation_and_explicit_max():
    flow = torch.cat([_unit(0.3, 1.0), _unit(0.3, 4.0)])
    img = flow_to_color(flow)
    assert img[0].min() > img[1].min()  # the small motion is paler than the large one
    half = flow_to_color(_unit(0.3, 2.0), max_magnitude=4.0)
    torch.testing.assert_close(half[0, 0, 0], (1 + img[1, 0, 0]) / 2)
    beyond = flow_to_color(_unit(0.3, 8.0), max_magnitude=4.0)
    torch.testing.assert_close(beyond[0, 0, 0], img[1, 0, 0] * 0.75)


def test_nan_zero_and_bad_shape():
    flow = torch.zeros(2, 2, 4, 4)
    assert torch.equal(flow_to_color(flow), torch.ones(2, 4, 4, 3))
    flow[0, 0, 1, 1] = float("nan")
    assert torch.isfinite(flow_to_color(flow)).all()
    with pytest.raises(InputError):
        flow_to_color(torch.zeros(2, 3, 4, 4))


def test_field_types_preview():
    flow = torch.randn(2, 2, 6, 5)
    assert torch.equal(MotionField(flow).to_image(), flow_to_color(flow))
    assert torch.equal(DenseFlow(flow).to_image(max_magnitude=3.0), flow_to_color(flow, 3.0))
