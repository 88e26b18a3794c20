"""Skeleton images exactly as the official ``draw_pose`` renders them (MimicMotion PoseNet input).

The official drawing happens on a canvas whose short side is 2160 px (so stroke widths do not
depend on the output size) and is then shrunk with ``cv2.resize`` (INTER_LINEAR). Quirks kept
because the trained PoseNet saw them: limbs are dimmed to 60% before the joints are drawn; only
17 of the 19 limb pairs are drawn; the colour table is RGB but the canvas is treated as BGR at
the end, so red and blue are swapped in the output; a limb is drawn when both end scores are
>= 0.3 while a joint is drawn when its subset entry is not -1 (score > 0.3), and a limb whose end
has subset -1 takes that end from the last candidate row; hand and face points are hidden when
their integer pixel coordinate is < 1, with no score threshold.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..types import PoseSequence
from .frame import PoseFrame

REF_SIZE = 2160
LIMB_MIN_SCORE = 0.3
STICK_HALF_WIDTH = 4
EPS = 0.01
# 1-based OpenPose-18 point pairs; only the first 17 are drawn by the official code
LIMBS = np.array([[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12],
                  [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]) - 1
COLORS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
          [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
          [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
HAND_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10],
                       [10, 11], [11, 12], [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18],
                       [18, 19], [19, 20]])
_DIM_LUT = (np.arange(256) * 0.6).astype(np.uint8)  # the official (canvas * 0.6).astype(uint8)


def _rainbow(n: int) -> np.ndarray:
    """HSV(i/n, 1, 1) -> RGB in float64, with matplotlib's hsv_to_rgb arithmetic (bit-equal)."""
    h6 = np.arange(n) / float(n) * 6.0
    sector = h6.astype(int)
    f = h6 - sector
    one, zero = np.ones(n), np.zeros(n)
    q, t = 1.0 - f, 1.0 - (1.0 - f)
    table = {0: (one, t, zero), 1: (q, one, zero), 2: (zero, one, t),
             3: (zero, q, one), 4: (t, zero, one), 5: (one, zero, q)}
    return np.stack([np.stack(table[s % 6])[:, i] for i, s in enumerate(sector)])


HAND_EDGE_COLORS = _rainbow(len(HAND_EDGES))


def canvas_shape(height: int, width: int, ref_size: int = REF_SIZE) -> tuple[int, int, int]:
    short = min(height, width)
    ratio = (ref_size / short) if short != ref_size else 1
    return int(height * ratio), int(width * ratio), 3


def _draw_limbs(canvas: np.ndarray, frame: PoseFrame, marks: list[np.ndarray]) -> None:
    """Filled ellipses for the limbs, already dimmed to 60%.

    The official code fills the limbs and then dims the whole canvas; fills overwrite (no
    blending) on a black canvas, so filling with the dimmed colour gives the same pixels.
    """
    ch, cw = canvas.shape[:2]
    for i, pair in enumerate(LIMBS):
        for n in range(frame.num_people):
            conf = frame.score[n][pair]
            if conf[0] < LIMB_MIN_SCORE or conf[1] < LIMB_MIN_SCORE:
                continue
            index = frame.subset[n][pair].astype(int)
            xs = frame.candidate[index, 0] * float(cw)
            ys = frame.candidate[index, 1] * float(ch)
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))),
                                       (int(length / 2), STICK_HALF_WIDTH), int(angle), 0, 360, 1)
            alpha = conf[0] * conf[1]
            cv2.fillConvexPoly(canvas, polygon, [int(_DIM_LUT[int(c * alpha)]) for c in COLORS[i]])
            marks.append(polygon)


def _draw_joints(canvas: np.ndarray, frame: PoseFrame, marks: list[np.ndarray]) -> None:
    ch, cw = canvas.shape[:2]
    for i in range(18):
        for n in range(frame.num_people):
            index = int(frame.subset[n][i])
            if index == -1:
                continue
            x, y = frame.candidate[index][0:2]
            conf = frame.score[n][i]
            center = (int(x * cw), int(y * ch))
            cv2.circle(canvas, center, 4, [int(c * conf) for c in COLORS[i]], thickness=-1)
            marks.append(np.array([center]))


def _pixels(points: np.ndarray, ch: int, cw: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel coordinates (truncated like int()) and the official '> eps' visibility."""
    px = np.stack([(points[..., 0] * cw), (points[..., 1] * ch)], -1)
    px = np.where(np.isfinite(px), px, -1).astype(np.int64)
    return px, (px[..., 0] > EPS) & (px[..., 1] > EPS)


def _draw_hands(canvas: np.ndarray, hands: np.ndarray, hands_score: np.ndarray, marks: list[np.ndarray]) -> None:
    ch, cw = canvas.shape[:2]
    px, shown = _pixels(hands, ch, cw)
    marks.append(px[shown])
    for peaks, ok, scores in zip(px.tolist(), shown, hands_score):
        for e, (a, b) in enumerate(HAND_EDGES):
            if ok[a] and ok[b]:
                score = int(scores[a] * scores[b] * 255)
                cv2.line(canvas, tuple(peaks[a]), tuple(peaks[b]),
                         tuple((HAND_EDGE_COLORS[e] * score).tolist()), thickness=2)
        for k in np.flatnonzero(ok):
            cv2.circle(canvas, tuple(peaks[k]), 4, (0, 0, int(scores[k] * 255)), thickness=-1)


def _draw_faces(canvas: np.ndarray, faces: np.ndarray, faces_score: np.ndarray, marks: list[np.ndarray]) -> None:
    ch, cw = canvas.shape[:2]
    px, shown = _pixels(faces, ch, cw)
    marks.append(px[shown])
    for lmks, ok, scores in zip(px.tolist(), shown, faces_score):
        for k in np.flatnonzero(ok):
            conf = int(scores[k] * 255)
            cv2.circle(canvas, tuple(lmks[k]), 3, (conf, conf, conf), thickness=-1)


def _clear(canvas: np.ndarray, marks: list[np.ndarray]) -> None:
    """Zero the part of the canvas that was drawn: every point drawn plus the stroke radius."""
    points = np.concatenate([m.reshape(-1, 2) for m in marks]) if marks else np.zeros((0, 2), int)
    if len(points) == 0:
        return
    margin = 8  # > circle radius 4 and line half-thickness 1
    x0, y0 = np.maximum(points.min(0) - margin, 0)
    x1, y1 = np.maximum(points.max(0) + margin + 1, 0)
    canvas[y0:y1, x0:x1] = 0


def draw_pose(frame: PoseFrame, height: int, width: int, *, canvas: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Render all people of ``frame`` to an (height, width, 3) uint8 RGB image.

    ``canvas`` (zeros, shape ``canvas_shape(height, width)``) and ``out`` may be passed to reuse
    memory across frames; the canvas is left zeroed again on return.
    """
    shape = canvas_shape(height, width)
    if canvas is None:
        canvas = np.zeros(shape, np.uint8)
    marks: list[np.ndarray] = []
    _draw_limbs(canvas, frame, marks)
    _draw_joints(canvas, frame, marks)
    _draw_hands(canvas, frame.hands, frame.hands_score, marks)
    _draw_faces(canvas, frame.faces, frame.faces_score, marks)
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    _clear(canvas, marks)
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    out[...] = small[..., ::-1]  # the official BGR->RGB conversion of an RGB-coloured canvas
    return out


def render_poses(poses: PoseSequence, size: tuple[int, int] | None = None,
                 frames: Sequence[int] | None = None) -> np.ndarray:
    """(n, H, W, 3) uint8 skeleton images of ``frames`` (default every frame, reference first): the
    PoseNet inputs. With ``poses.scene`` every person in it is drawn (official), else only the
    chosen person. ``size`` (h, w): draw at that size instead of the canvas (a preview).
    """
    h, w = size if size is not None else (poses.height, poses.width)
    indices = range(poses.num_frames) if frames is None else frames
    canvas = np.zeros(canvas_shape(h, w), np.uint8)
    out = np.empty((len(indices), h, w, 3), np.uint8)
    for row, f in enumerate(indices):
        frame = poses.scene[f] if poses.scene is not None else PoseFrame.from_sequence(poses, f)
        draw_pose(frame, h, w, canvas=canvas, out=out[row])
    return out


OUTLINE_COLOR = (255, 255, 255)
OUTLINE_MARGIN = 4  # pixels around the body points


def outline_reference_person(images: np.ndarray, poses: PoseSequence) -> np.ndarray:
    """A copy of skeleton images (F, H, W, 3) uint8 with a white box around the chosen person's
    visible body points in the reference frame: a preview of which person was taken. Never feed
    the outlined images to PoseNet."""
    out = images.copy()
    visible = poses.body_subset[0] >= 0
    if not visible.any():
        return out
    pts = poses.body[0][visible] * [images.shape[2], images.shape[1]]  # the images may be a smaller preview
    (x0, y0), (x1, y1) = pts.min(0) - OUTLINE_MARGIN, pts.max(0) + OUTLINE_MARGIN
    frame = np.ascontiguousarray(out[0])
    cv2.rectangle(frame, (int(x0), int(y0)), (int(np.ceil(x1)), int(np.ceil(y1))), OUTLINE_COLOR, thickness=1)
    out[0] = frame
    return out
