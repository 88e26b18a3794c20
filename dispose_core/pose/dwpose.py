"""DWPose on onnxruntime: YOLOX-L person boxes, then RTMPose-style SimCC whole-body keypoints.

Pre- and post-processing follow the official MimicMotion/DisPose wrapper step by step (checked
against the golden cases, which feed recorded raw network outputs through these functions):
letterbox to 640 with grey 114 padding and raw 0..255 RGB; YOLOX anchor decode, person-class
greedy NMS with the +1 pixel IoU, score > 0.3; a 1.25-padded 3:4 box warped to 288x384 and
ImageNet-normalised (RGB); SimCC argmax decode; neck insertion and the OpenPose-18 order.

The two sessions are injectable (anything with ``get_inputs``/``get_outputs``/``run``), so the
golden tests run our processing on recorded outputs. Where a model's batch dimension is dynamic,
all frames (detector) and all person crops of a batch (pose net) go through one ``run`` call; the
public exports have a fixed batch of 1, so there the calls loop over prepared inputs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelFileError
from ..loading.layout import BY_KEY
from .frame import PoseFrame

DET_SIZE = 640
DET_PAD = 114
DET_STRIDES = (8, 16, 32)
DET_NUM_OUTPUTS = 85  # dx, dy, log w, log h, objectness, 80 classes
NMS_IOU = 0.45
NMS_SCORE = 0.1
PERSON_SCORE = 0.3
BOX_PADDING = 1.25
POSE_MEAN = np.array([123.675, 116.28, 103.53])
POSE_STD = np.array([58.395, 57.12, 57.375])
SIMCC_SPLIT = 2.0
POSE_INPUT_HW = (384, 288)  # dw-ll_ucoco_384; used only if the model leaves its input size open
NUM_KEYPOINTS = 133
NECK_SCORE = 0.3
# OpenPose-18 slots filled from the 134-point list (COCO-17 with the neck inserted at 17)
OPENPOSE_SLOTS = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]
FROM_COCO = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]


# ---------------------------------------------------------------- detector
def letterbox(image: np.ndarray, size: int = DET_SIZE) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 pasted top-left on grey 114, and the scale r."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    out = np.full((size, size, 3), DET_PAD, np.uint8)
    nw, nh = int(w * r), int(h * r)
    out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r


def _anchor_grid(size: int = DET_SIZE) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for stride in DET_STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(grids), np.concatenate(strides)


_GRID, _STRIDE = _anchor_grid()


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> list[int]:
    """Greedy NMS, highest score first; IoU with +1 pixel areas; suppress when IoU > threshold."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return keep


def decode_detections(raw: np.ndarray, ratio: float) -> np.ndarray:
    """Raw YOLOX output (8400, 85) of one letterboxed image -> person boxes (n, 4) xyxy in pixels.

    The official NMS is class-aware over 80 classes and keeps only class 0 afterwards; classes
    never interact, so running it for the person class alone gives the same boxes and order.
    """
    raw = raw.astype(np.float32, copy=False)
    centers = ((raw[:, :2] + _GRID) * _STRIDE).astype(np.float32)
    sizes = (np.exp(raw[:, 2:4]) * _STRIDE).astype(np.float32)
    scores = raw[:, 4] * raw[:, 5]
    boxes = np.concatenate([centers - sizes / 2.0, centers + sizes / 2.0], 1)
    boxes /= ratio
    candidates = scores > NMS_SCORE
    boxes, scores = boxes[candidates], scores[candidates]
    if len(scores) == 0:
        return np.zeros((0, 4))
    keep = nms(boxes, scores)
    kept = boxes[keep].astype(np.float64)
    return kept[scores[keep] > PERSON_SCORE]


# ---------------------------------------------------------------- pose crops
def box_center_scale(boxes: np.ndarray, input_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Center and 1.25-padded, aspect-fixed (w, h) scale of each xyxy box, (n, 2) each."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    scale = (boxes[:, 2:] - boxes[:, :2]) * BOX_PADDING
    aspect = input_wh[0] / input_wh[1]
    w, h = scale[:, :1], scale[:, 1:]
    scale = np.where(w > h * aspect, np.hstack([w, w / aspect]), np.hstack([h * aspect, h]))
    return center, scale


def _warp_matrix(center: np.ndarray, scale: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """The official three-point affine (float32 points, no rotation): box -> model input."""
    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return b + np.array([-d[1], d[0]], np.float32)

    dw, dh = input_wh
    src = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    src[2] = third(src[0], src[1])
    dst = np.zeros((3, 2), np.float32)
    dst[0] = [dw * 0.5, dh * 0.5]
    dst[1] = np.array([dw * 0.5, dh * 0.5]) + np.array([0.0, dw * -0.5])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def crop_people(image: np.ndarray, boxes: np.ndarray, input_wh: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warped uint8 crops (n, h, w, 3), centers and scales; no box -> the whole image as one box."""
    if len(boxes) == 0:
        boxes = np.array([[0, 0, image.shape[1], image.shape[0]]])
    center, scale = box_center_scale(boxes, input_wh)
    crops = np.stack([cv2.warpAffine(image, _warp_matrix(c, s, input_wh), input_wh, flags=cv2.INTER_LINEAR)
                      for c, s in zip(center, scale)])
    return crops, center, scale


# (pixel - mean) / std for every uint8 value and channel, in float64 then float32 like the official
# float64 arithmetic followed by onnxruntime's cast: a table lookup gives the same numbers
_NORMALISE_LUT = ((np.arange(256)[:, None] - POSE_MEAN) / POSE_STD).astype(np.float32)[None]


def normalise_crops(crops: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 -> (n, 3, h, w) float32 model input, ImageNet mean/std on RGB."""
    return np.stack([cv2.LUT(c, _NORMALISE_LUT) for c in crops]).transpose(0, 3, 1, 2)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, center: np.ndarray, scale: np.ndarray,
                 input_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """SimCC argmax -> keypoints (n, 133, 2) in image pixels and scores (n, 133).

    Score = min of the two maxima; a point with score <= 0 is put at (-1, -1) in SimCC bins
    (-0.5 model pixels) before mapping back, as the official decoder does.
    """
    simcc_x = simcc_x.astype(np.float32, copy=False)
    simcc_y = simcc_y.astype(np.float32, copy=False)
    locs = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], -1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    locs[scores <= 0.0] = -1
    locs /= SIMCC_SPLIT
    size = np.asarray(input_wh)
    keypoints = locs / size * scale[:, None] + center[:, None] - scale[:, None] / 2
    return keypoints, scores


def to_openpose(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """133 COCO-WholeBody points -> 134 with the neck at 17 and the first 18 in OpenPose order.

    The neck is the shoulders' midpoint; its score is a 0/1 flag (both shoulders > 0.3).
    """
    info = np.concatenate([keypoints, scores[..., None]], -1)
    neck = info[:, [5, 6]].mean(1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > NECK_SCORE, info[:, 6, 2] > NECK_SCORE)
    info = np.insert(info, 17, neck, axis=1)
    info[:, OPENPOSE_SLOTS] = info[:, FROM_COCO]
    return info[..., :2], info[..., 2]


# ---------------------------------------------------------------- sessions
@dataclass
class ImagePeople:
    """Everything DWPose found in one image."""

    boxes: np.ndarray  # (k, 4) detector boxes, pixels (k may be 0)
    keypoints: np.ndarray  # (m, 134, 2) pixels, OpenPose order; m = max(k, 1)
    scores: np.ndarray  # (m, 134)
    height: int
    width: int

    @property
    def fallback(self) -> bool:
        """No box was found: the one pose was estimated on the whole image (official fallback)."""
        return len(self.boxes) == 0

    def frame(self) -> PoseFrame:
        """The official DWposeDetector dict for this image (normalised coordinates)."""
        return PoseFrame.from_keypoints(self.keypoints, self.scores, self.height, self.width)


def _is_dynamic(dim) -> bool:
    return not isinstance(dim, int) or dim <= 0


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "batch" for d in shape) + "]"


def _check_io(session, file_name: str, inputs: list[tuple], outputs: list[tuple]) -> None:
    """Raise ModelFileError unless the session's ranks and fixed sizes match.

    "batch" accepts 1 or a dynamic size; a symbolic (dynamic) size elsewhere is accepted, since
    only a concrete contradicting size proves the file wrong.
    """
    got_in = [tuple(i.shape) for i in session.get_inputs()]
    got_out = [tuple(o.shape) for o in session.get_outputs()]

    def fits(got: tuple, want: tuple) -> bool:
        if len(got) != len(want):
            return False
        return all(_is_dynamic(g) or g == (1 if w == "batch" else w) for g, w in zip(got, want))

    ok = len(got_in) == len(inputs) and len(got_out) >= len(outputs) and all(
        fits(g, w) for g, w in zip(got_in + got_out[:len(outputs)], inputs + outputs))
    if not ok:
        raise ModelFileError(
            f"'{file_name}' is not the expected DWPose model: inputs {[_shape_text(s) for s in got_in]}, "
            f"outputs {[_shape_text(s) for s in got_out]}; expected inputs {[_shape_text(s) for s in inputs]} and "
            f"outputs {[_shape_text(s) for s in outputs]}. Select {BY_KEY['dwpose_detector'].name} as the "
            f"detector and {BY_KEY['dwpose_pose'].name} as the pose model "
            f"(from {BY_KEY['dwpose_pose'].source}).")


class DWPose:
    """Person detector + whole-body pose estimator over two onnxruntime(-like) sessions."""

    def __init__(self, detector_session, pose_session, *, detector_name: str = "yolox_l.onnx",
                 pose_name: str = "dw-ll_ucoco_384.onnx") -> None:
        _check_io(detector_session, detector_name, [("batch", 3, DET_SIZE, DET_SIZE)],
                  [("batch", len(_GRID), DET_NUM_OUTPUTS)])
        pose_in = tuple(pose_session.get_inputs()[0].shape)
        h, w = (pose_in[2], pose_in[3]) if len(pose_in) == 4 else POSE_INPUT_HW
        if _is_dynamic(h) or _is_dynamic(w):  # the crop size is read from the model, as officially
            h, w = POSE_INPUT_HW
        _check_io(pose_session, pose_name, [("batch", 3, h, w)],
                  [("batch", NUM_KEYPOINTS, int(w * SIMCC_SPLIT)), ("batch", NUM_KEYPOINTS, int(h * SIMCC_SPLIT))])
        self.detector = detector_session
        self.pose = pose_session
        self.input_wh = (w, h)
        self._det_batched = _is_dynamic(detector_session.get_inputs()[0].shape[0])
        self._pose_batched = _is_dynamic(pose_session.get_inputs()[0].shape[0])

    def _run(self, session, batched: bool, inputs: np.ndarray, n_out: int) -> list[np.ndarray]:
        """Outputs for a batch of inputs: one call if the model batches, else one call per item."""
        name = session.get_inputs()[0].name
        out_names = [o.name for o in session.get_outputs()]
        if batched:
            return list(session.run(out_names, {name: inputs})[:n_out])
        parts = [session.run(out_names, {name: inputs[i:i + 1]})[:n_out] for i in range(len(inputs))]
        return [np.concatenate([p[k] for p in parts]) for k in range(n_out)]

    def run_detector(self, batch: np.ndarray) -> np.ndarray:
        """Raw YOLOX output (n, 8400, 85) for letterboxed (n, 3, 640, 640) float32 images."""
        return self._run(self.detector, self._det_batched, batch, 1)[0]

    def run_pose(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw SimCC outputs (n, 133, 2w), (n, 133, 2h) for normalised (n, 3, h, w) crops."""
        simcc_x, simcc_y = self._run(self.pose, self._pose_batched, batch, 2)
        return simcc_x, simcc_y

    def detect_boxes(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person boxes (k, 4) per image."""
        boxed = [letterbox(img) for img in images]
        raw = self.run_detector(np.stack([b.transpose(2, 0, 1) for b, _ in boxed]).astype(np.float32))
        return [decode_detections(raw[i], r) for i, (_, r) in enumerate(boxed)]

    def estimate(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[ImagePeople]:
        """Whole-body keypoints of every box (whole image where there is none), one net batch."""
        crops, centers, scales, counts = [], [], [], []
        for img, b in zip(images, boxes):
            c, ce, sc = crop_people(img, b, self.input_wh)
            crops.append(c)
            centers.append(ce)
            scales.append(sc)
            counts.append(len(c))
        simcc_x, simcc_y = self.run_pose(normalise_crops(np.concatenate(crops)))
        kps, scores = decode_simcc(simcc_x, simcc_y, np.concatenate(centers), np.concatenate(scales), self.input_wh)
        kps, scores = to_openpose(kps, scores)
        people, start = [], 0
        for img, b, n in zip(images, boxes, counts):
            people.append(ImagePeople(np.asarray(b).reshape(-1, 4), kps[start:start + n], scores[start:start + n],
                                      int(img.shape[0]), int(img.shape[1])))
            start += n
        return people

    def __call__(self, images: Sequence[np.ndarray]) -> list[ImagePeople]:
        """Detect and estimate every person in each (H, W, 3) uint8 RGB image."""
        images = [np.ascontiguousarray(img) for img in images]
        return self.estimate(images, self.detect_boxes(images))


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build has it (onnxruntime-gpu), always CPU as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _session(path: str | Path, key: str, providers: list[str]):
    import onnxruntime as ort

    path = BY_KEY[key].require(path)
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # not an ONNX file, truncated download, unsupported opset
        raise ModelFileError(
            f"Cannot load '{path.name}' from '{path.parent}' as an ONNX model ({exc}). "
            f"Download it again from {BY_KEY[key].source}.") from exc


def load_dwpose(detector_path: str | Path, pose_path: str | Path, providers: list[str] | None = None) -> DWPose:
    """Open both DWPose ONNX files; fails at once if a file is missing or not the expected model."""
    providers = providers or default_providers()
    return DWPose(_session(detector_path, "dwpose_detector", providers),
                  _session(pose_path, "dwpose_pose", providers),
                  detector_name=Path(detector_path).name, pose_name=Path(pose_path).name)
