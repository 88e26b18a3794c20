"""Flow colour visualisation."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

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


# A literal flow (NaN, inf, zero, large and small motion) and the colours the previous, unchunked
# implementation (main 11f2e5a) gave for it, printed with 9 significant digits (exact for float32).
LITERAL_FLOW = torch.tensor([
    [[[0.0, 1.5, -2.25], [3.0, float("nan"), -0.5], [7.0, -7.0, 0.125]],
     [[0.0, -1.0, 2.0], [-4.0, 1.0, float("inf")], [0.0, 3.5, -6.0]]],
    [[[0.3, -0.3, 5.0], [-5.0, 2.5, -1.25], [0.0, 0.75, -3.0]],
     [[0.4, 0.4, 1.0], [-1.0, -2.5, 4.0], [-8.0, 0.0, 0.5]]],
])
PREVIOUS_COLOURS = {
    None: [1, 1, 1, 0.999072433, 0.774653077, 1, 0.639067709, 1, 0.623700142, 0.857234955, 0.375, 1, 1,
           0.987500012, 0.875, 0.9375, 0.988636374, 1, 1, 0.125, 0.125, 0.0217202306, 1, 0.514588237,
           0.519839287, 0.249837279, 1, 1, 0.970706284, 0.9375, 0.9580158, 1, 0.9375, 1, 0.434709549,
           0.362622559, 0.362622559, 0.785812855, 1, 0.940507829, 0.558058262, 1, 0.903690696, 1, 0.476154566,
           0.346153855, 0, 1, 1, 0.90625, 0.90625, 0.61982733, 0.97993201, 1],
    4.0: [1, 1, 1, 0.998144925, 0.549306095, 1, 0.278135419, 1, 0.247400343, 0.578682005, 0, 0.75, 1,
          0.975000024, 0.75, 0.875, 0.977272749, 1, 0.75, 0, 0, 0, 0.75, 0.377858162, 0.269943476, 0, 0.75, 1,
          0.941412628, 0.875, 0.916031539, 1, 0.875, 0.75, 0.0848244876, 0, 0, 0.497966647, 0.75, 0.881015718,
          0.116116524, 1, 0.612112045, 0.75, 0, 0.259615391, 0, 0.75, 1, 0.8125, 0.8125, 0.23965466, 0.959863961,
          1],
}


@pytest.mark.parametrize("max_magnitude", [None, 4.0])
@pytest.mark.parametrize("chunk", [1, 2])
def test_chunked_colours_equal_the_previous_implementation(max_magnitude, chunk):
    expected = torch.tensor(PREVIOUS_COLOURS[max_magnitude], dtype=torch.float32).view(2, 3, 3, 3)
    assert torch.equal(flow_to_color(LITERAL_FLOW, max_magnitude, chunk=chunk), expected)


def test_chunking_changes_nothing_but_the_last_bit():
    """Vectorised atan2/sqrt may round the tail of a chunk differently from its body: 1-2 ulp."""
    flow = torch.randn(7, 2, 33, 21, generator=torch.Generator().manual_seed(0)) * 30
    whole = flow_to_color(flow, chunk=7)
    for chunk in (1, 3):
        torch.testing.assert_close(flow_to_color(flow, chunk=chunk), whole, atol=1e-6, rtol=0)


def test_preview_is_capped_and_normalised_over_the_whole_field():
    flow = torch.zeros(3, 2, 40, 100)
    flow[2, 0] = 5.0  # only the last frame moves: frames 0 and 1 stay white
    flow[1, 1, :, :50] = 2.5  # half the strongest motion, in the left half of frame 1
    preview = DenseFlow(flow).to_image(long_side=50, chunk=2)
    assert preview.shape == (3, 20, 50, 3)  # aspect kept
    full = flow_to_color(flow)
    area = torch.nn.functional.avg_pool2d(full.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(preview, area, atol=1e-6, rtol=0)
    assert torch.equal(preview[0], torch.ones(20, 50, 3))
    assert DenseFlow(flow).to_image(long_side=500).shape == (3, 40, 100, 3)  # never enlarged


def test_compact_dense_flow_preview_equals_the_expanded_one():
    flow384 = torch.randn(3, 2, 24, 24, generator=torch.Generator().manual_seed(1))  # stands for CMP's 384 grid
    dense = DenseFlow(flow384, height=16, width=40)
    assert torch.equal(dense.to_image(chunk=3), flow_to_color(dense.fields(), chunk=3))


def test_colouring_holds_few_canvas_planes_per_frame():
    """Peak RSS growth of colouring 32 frames, in float32 canvas planes per frame (a fresh process):
    the output is 3, the chunk's temporaries add a little; the unchunked version took 23."""
    code = (
        "import resource, torch\n"
        "from dispose_core.motion.flow_viz import flow_to_color\n"
        "flow = torch.randn(32, 2, 256, 512, generator=torch.Generator().manual_seed(0))\n"
        "flow_to_color(flow[:1])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "flow_to_color(flow)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / (32 * 256 * 512 * 4))\n"
    )
    planes = float(subprocess.check_output([sys.executable, "-c", code], cwd=Path(__file__).parents[1], text=True))
    assert planes < 8
