"""A picture of the keypoint correspondence, for the DIFT node's IMAGE output.

Frame 0: the DIFT map's first three principal components as RGB, blended over the reference, with
the reference keypoints. Frames 1..: each driving frame's keypoints drawn over the dimmed reference
in the colour of their reference embedding, so equal colours mean "this point carries that
reference feature". Colours come from one PCA basis, so map and points agree.

``correspondence_picture`` does the PCA once, when the embeddings are built (a small image, one
per video); ``draw_correspondence`` draws the frames only when a preview is asked for.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..image import preview_size
from ..types import CorrespondencePicture, PoseSequence
from .embeddings import reference_point_embeddings

_BLEND = 0.5  # weight of the PCA colours over the reference in frame 0
_DIM = 0.35  # brightness of the reference behind the driving frames' points


def _principal_axes(centred: torch.Tensor, k: int = 3, block: int = 8, iterations: int = 30) -> torch.Tensor:
    """(C, k) leading principal axes of (N, C) centred rows: block power iteration + Rayleigh-Ritz.

    Deterministic and ~50x faster than a full SVD of a 2304 x 1280 map on a CPU; exact enough
    for a colouring.
    """
    cov = centred.double().T @ centred.double()
    q = torch.linalg.qr(cov[:, : min(block, cov.shape[0])])[0]
    for _ in range(iterations):
        q = torch.linalg.qr(cov @ q)[0]
    _, vecs = torch.linalg.eigh(q.T @ cov @ q)  # ascending
    return (q @ vecs.flip(-1)[:, :k]).float()


def _pca_colours(feature: torch.Tensor, points: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """RGB in [0,1] of every map cell (h, w, 3) and of each point embedding (18, 3): PCA(3), robust range."""
    c, h, w = feature.shape[1:]
    cells = feature[0].float().reshape(c, h * w).T
    mean = cells.mean(0)
    basis = _principal_axes(cells - mean)  # (C, k), k <= 3
    flip = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))  # deterministic signs
    basis = basis * flip
    proj = (cells - mean) @ basis
    lo, hi = torch.quantile(proj, 0.01, dim=0), torch.quantile(proj, 0.99, dim=0)
    scale = (hi - lo).clamp_min(1e-8)
    pad = 3 - basis.shape[1]  # maps with fewer than 3 cells/channels: grey channels

    def colour(x: torch.Tensor) -> np.ndarray:
        rgb = ((x - mean) @ basis - lo) / scale
        return torch.nn.functional.pad(rgb, (0, pad), value=0.5).clamp(0, 1).numpy()

    return colour(cells).reshape(h, w, 3), colour(points.float().cpu())


def correspondence_picture(feature: torch.Tensor, poses: PoseSequence,
                           reference_image: np.ndarray) -> CorrespondencePicture:
    """What the preview of every frame is drawn on, one for the whole video: the PCA map blended
    over ``reference_image`` (the (h, w, 3) uint8 RGB reference, at the preview's size) and the
    colour of each reference embedding. Its size does not grow with the frame count, so the
    embeddings can carry it for a preview node to draw later."""
    if reference_image.ndim != 3 or reference_image.shape[2] != 3 or reference_image.dtype != np.uint8:
        raise InputError(f"Preview: the reference must be an (H, W, 3) uint8 image, got "
                         f"{reference_image.shape} {reference_image.dtype}.")
    height, width = reference_image.shape[:2]
    feature = feature.detach().cpu()
    map_rgb, point_rgb = _pca_colours(feature, reference_point_embeddings(feature, poses))
    upsampled = cv2.resize(map_rgb.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    blended = ((1 - _BLEND) * reference_image + _BLEND * 255 * upsampled).round().clip(0, 255).astype(np.uint8)
    return CorrespondencePicture(pca_map=blended, reference=reference_image.copy(),
                                 colours=(point_rgb * 255).round().astype(np.uint8))


def draw_correspondence(picture: CorrespondencePicture, keypoints: np.ndarray, subset: np.ndarray,
                        long_side: int | None = None) -> np.ndarray:
    """(F, h, w, 3) uint8 preview of the (F, 18, 2) normalised body ``keypoints`` (frame 0 = the
    reference) with their (F, 18) ``subset``, at most ``long_side`` long (None, or more than the
    picture: the picture's size)."""
    pca_map, reference = picture.pca_map, picture.reference
    height, width = preview_size(*pca_map.shape[:2], long_side or max(pca_map.shape[:2]))
    if (height, width) != pca_map.shape[:2]:
        pca_map, reference = (cv2.resize(i, (width, height), interpolation=cv2.INTER_AREA)
                              for i in (pca_map, reference))
    ref_visible = np.asarray(subset[0]) != -1
    colours = [tuple(int(v) for v in rgb) for rgb in picture.colours]

    out = np.empty((len(keypoints), height, width, 3), np.uint8)
    out[0] = pca_map
    out[1:] = (reference * _DIM).astype(np.uint8)

    radius = max(2, round(min(height, width) / 80))
    pixels = np.nan_to_num(np.asarray(keypoints, dtype=np.float64)) * (width, height)
    drawn = (np.asarray(subset) != -1) & ref_visible[None]
    for f, k in zip(*np.nonzero(drawn)):
        centre = (int(round(pixels[f, k, 0])), int(round(pixels[f, k, 1])))
        cv2.circle(out[f], centre, radius + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out[f], centre, radius, colours[k], -1, cv2.LINE_AA)
    return out
