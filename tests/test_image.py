"""G0: generation-size arithmetic and the reference resize/crop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dispose_core.errors import InputError
from dispose_core.image import cover_size, fit_to_canvas, target_size
from golden import golden_params, require


@golden_params("G0")
def test_target_size_table_golden(golden_name):
    case = require(golden_name)
    for row in case.sidecar["rows"]:
        h, w = row["image_hw"]
        th, tw = target_size(h, w, row["resolution"])
        assert [th, tw] == row["target_hw"], row
        assert list(cover_size(h, w, th, tw)) == row["resize_hw"], row
        img = np.zeros((h, w, 3), np.uint8) if h * w <= 1_100_000 else None
        if img is not None:
            assert fit_to_canvas(img, th, tw).shape == (th, tw, 3)


def test_fit_uint8_matches_float_interpolate_and_center_crop():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (70, 50, 3), dtype=np.uint8)
    th, tw = 64, 36  # aspect 1.4 < 64/36, so the cover size is (64, ceil(64 / 1.4)) = (64, 46)
    out = fit_to_canvas(img, th, tw)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(64, 46),
                        mode="bilinear", align_corners=False).round()[0].permute(1, 2, 0)
    left = int(round((46 - 36) / 2))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, ref[:, left:left + 36].numpy().astype(np.uint8))


def test_fit_float_tensor_keeps_type_and_agrees_with_uint8():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    as_float = fit_to_canvas(torch.from_numpy(img).float() / 255, 72, 128)
    as_u8 = fit_to_canvas(img, 72, 128)
    assert isinstance(as_float, torch.Tensor) and as_float.dtype == torch.float32
    assert np.abs(as_float.numpy() * 255 - as_u8).max() <= 0.5 + 1e-4


def test_same_size_is_identity():
    img = np.random.default_rng(2).integers(0, 256, (1024, 576, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_to_canvas(img, *target_size(1024, 576)), img)


def test_bad_input_raises_input_error():
    with pytest.raises(InputError):
        target_size(0, 10)
    with pytest.raises(InputError):
        fit_to_canvas(np.zeros((4, 4), np.uint8), 4, 4)
