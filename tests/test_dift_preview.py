"""Correspondence preview, and the whole DIFT path on the tiny SD 1.5 folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_dift_embeddings import make_poses

from dispose_core.dift.embeddings import build_point_embeddings
from dispose_core.dift.featurizer import extract_features
from dispose_core.dift.preview import _pca_colours, _principal_axes, correspondence_picture, draw_correspondence
from dispose_core.errors import InputError
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.sd15 import load_dift


def correspondence_preview(feature: torch.Tensor, poses, reference: np.ndarray) -> np.ndarray:
    """The preview as the legacy DIFT node draws it: picture once, then every frame at its size."""
    return draw_correspondence(correspondence_picture(feature, poses, reference), poses.body, poses.body_subset)


def _poses(frames: int, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    body = rng.uniform(0.1, 0.9, (frames, 18, 2))
    subset = np.tile(np.arange(18), (frames, 1))
    subset[0, 3] = -1  # not seen in the reference: never drawn
    subset[2, 5] = -1  # not seen in frame 2
    return make_poses(body, subset, height, width)


def test_tiny_dift_path_end_to_end(tiny_models_dir):
    featurizer = load_dift(BY_KEY["sd15"].path_in(tiny_models_dir))
    h, w = 128, 64
    reference = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = torch.from_numpy(reference).permute(2, 0, 1)[None].float() / 127.5 - 1
    poses = _poses(4, h, w)
    (feature,) = extract_features(featurizer, image, ensemble_size=2, generator=torch.Generator().manual_seed(3))
    points = build_point_embeddings(feature, poses)
    assert points.ref_point_emb.shape == (18, feature.shape[1]) and torch.all(points.ref_point_emb[3] == 0)
    preview = correspondence_preview(feature, poses, reference)
    assert preview.shape == (4, h, w, 3) and preview.dtype == np.uint8
    assert not np.array_equal(preview[0], reference)
    np.testing.assert_array_equal(preview, correspondence_preview(feature, poses, reference))


def test_points_carry_their_embedding_colour():
    h, w = 160, 96
    torch.manual_seed(0)
    feature = torch.randn(1, 16, h // 16, w // 16)
    reference = np.full((h, w, 3), 100, np.uint8)
    poses = _poses(3, h, w, seed=5)
    preview = correspondence_preview(feature, poses, reference)
    points = build_point_embeddings(feature, poses)
    _, colours = _pca_colours(feature, points.ref_point_emb)
    expected = (colours * 255).round().astype(np.uint8)
    background = np.uint8(100 * 0.35)
    # A point drawn alone (no overlap) shows its colour at its centre.
    for f in (1, 2):
        for k in range(18):
            x, y = (poses.body[f, k] * (w, h)).round().astype(int)
            others = np.delete(poses.body[f], k, 0) * (w, h)
            if np.min(np.abs(others - (x, y)).max(1)) < 8:
                continue
            if poses.body_subset[f, k] == -1 or k == 3:
                assert np.all(preview[f, y, x] == background), (f, k)
            else:
                np.testing.assert_array_equal(preview[f, y, x], expected[k])
    with pytest.raises(InputError, match="uint8"):
        correspondence_preview(feature, poses, reference.astype(np.float32))


def test_principal_axes_match_svd():
    torch.manual_seed(2)
    x = torch.randn(300, 40) @ torch.diag(torch.linspace(3.0, 0.1, 40)) @ torch.linalg.qr(torch.randn(40, 40))[0]
    x = x - x.mean(0)
    exact = torch.linalg.svd(x, full_matrices=False)[2][:3].T
    cosines = (exact.T @ _principal_axes(x)).abs().diagonal()
    assert torch.all(cosines > 0.999), cosines
