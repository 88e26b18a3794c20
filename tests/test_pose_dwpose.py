"""DWPose wrapper: our pre/post-processing on the recorded raw network outputs (G5a), batching,
provider choice and model-file errors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dispose_core.errors import ModelFileError
from dispose_core.pose.dwpose import (DWPose, crop_people, decode_detections, decode_simcc, letterbox,
                                      load_dwpose, normalise_crops, to_openpose)
from dispose_core.pose.render import draw_pose
from golden import golden_params, require
from test_pose_render import FRAME_KEYS, assert_image_equal


@dataclass
class Port:
    name: str
    shape: tuple


class FakeSession:
    """Stands in for onnxruntime.InferenceSession: records inputs, replays given outputs per call."""

    def __init__(self, in_shape, out_shapes, replies, in_name="x"):
        self.inputs = [Port(in_name, tuple(in_shape))]
        self.outputs = [Port(f"y{i}", tuple(s)) for i, s in enumerate(out_shapes)]
        self.replies = list(replies)
        self.fed: list[np.ndarray] = []

    def get_inputs(self):
        return self.inputs

    def get_outputs(self):
        return self.outputs

    def run(self, names, feed):
        assert names == [o.name for o in self.outputs] and list(feed) == [self.inputs[0].name]
        batch = feed[self.inputs[0].name]
        assert batch.dtype == np.float32
        self.fed.append(batch)
        reply = self.replies.pop(0)
        assert all(len(r) == len(batch) for r in reply), "reply batch must match the input batch"
        return reply


def golden_sessions(t: dict, pose_batch) -> tuple[FakeSession, FakeSession]:
    """Fake detector + pose sessions replaying the G5a raw outputs (float16 -> exact float32)."""
    raw = t["det_raw_output"].float().numpy()
    size = t["det_input_u8"].shape[0]
    det = FakeSession((1, 3, size, size), [raw.shape], [[raw]])
    sx, sy = t["pose_raw_simcc_x"].float().numpy(), t["pose_raw_simcc_y"].float().numpy()
    if pose_batch == 1:
        replies = [[sx[i:i + 1], sy[i:i + 1]] for i in range(len(sx))]
    else:
        replies = [[sx, sy]]
    crop_h, crop_w = t["pose_crop_u8"].shape[1:3]
    pose = FakeSession((pose_batch, 3, crop_h, crop_w), [(pose_batch,) + sx.shape[1:], (pose_batch,) + sy.shape[1:]],
                       replies)
    return det, pose


def close(got, expected, tol) -> None:
    expected = expected.numpy() if hasattr(expected, "numpy") else expected
    if tol == "exact":
        np.testing.assert_array_equal(np.asarray(got, np.float64), np.asarray(expected, np.float64))
    else:
        np.testing.assert_allclose(got, expected, atol=tol["atol"], rtol=tol["rtol"])


@golden_params("G5a")
@pytest.mark.parametrize("pose_batch", [1, "batch"], ids=["fixed-batch", "dynamic-batch"])
def test_dwpose_wrapper_golden(golden_name, pose_batch):
    case = require(golden_name)
    t, tol = case.tensors, case.sidecar["tolerance"]
    image = t["image_u8"].numpy()
    det, pose = golden_sessions(t, pose_batch)
    model = DWPose(det, pose)
    (people,) = model([image])

    # detector input and boxes
    assert len(det.fed) == 1
    np.testing.assert_array_equal(det.fed[0][0].transpose(1, 2, 0), t["det_input_u8"].numpy())
    close(people.boxes, t["boxes_xyxy"], tol["boxes_xyxy"])
    assert people.fallback == (t["boxes_xyxy"].shape[0] == 0)

    # crops (one net call per crop on a fixed-batch model, one call for all on a dynamic one)
    crops, center, scale = crop_people(image, people.boxes, model.input_wh)
    np.testing.assert_array_equal(crops, t["pose_crop_u8"].numpy())
    close(center, t["crop_center"], tol["crop_center"])
    close(scale, t["crop_scale"], tol["crop_scale"])
    assert len(pose.fed) == (len(crops) if pose_batch == 1 else 1)
    np.testing.assert_array_equal(np.concatenate(pose.fed), normalise_crops(crops))

    # SimCC decode, 134-point OpenPose order
    kps, scores = decode_simcc(t["pose_raw_simcc_x"].float().numpy(), t["pose_raw_simcc_y"].float().numpy(),
                               center, scale, model.input_wh)
    close(kps, t["keypoints133_px"], tol["keypoints133_px"])
    close(scores, t["scores133"], tol["scores133"])
    close(people.keypoints, t["keypoints134_px"], tol["keypoints134_px"])
    close(people.scores, t["scores134"], tol["scores134"])
    kps134, scores134 = to_openpose(kps, scores)
    np.testing.assert_array_equal(kps134, people.keypoints)

    # the official detector dict and its drawing
    frame = people.frame()
    for ours, theirs in FRAME_KEYS.items():
        key = theirs if theirs in tol else theirs.removeprefix("bodies_")
        close(getattr(frame, ours), t[theirs], tol.get(theirs, tol.get(key, "exact")))
    h, w = image.shape[:2]
    assert_image_equal(draw_pose(frame, h, w), t["pose_image"].numpy())


def test_letterbox_scale_and_padding():
    img = np.full((100, 50, 3), 7, np.uint8)
    boxed, r = letterbox(img)
    assert r == 6.4 and boxed.shape == (640, 640, 3)
    assert (boxed[:, :320] == 7).all() and (boxed[:, 320:] == 114).all()


def anchor_output(boxes_scores: list[tuple[int, float, float, float, float, float]]) -> np.ndarray:
    """A raw YOLOX output with given (anchor, dx, dy, log w, log h, person score) rows, rest zero."""
    raw = np.zeros((8400, 85), np.float32)
    raw[:, 2:4] = -5.0
    for anchor, dx, dy, lw, lh, score in boxes_scores:
        raw[anchor, :5] = [dx, dy, lw, lh, 1.0]
        raw[anchor, 5] = score
    return raw


def test_nms_person_filter_and_order():
    # three boxes at stride-8 anchors: two overlapping (IoU > 0.45) and one apart; one weak
    raw = anchor_output([(80 * 10 + 10, 0.5, 0.5, 2.0, 3.0, 0.9),   # center (84, 84)
                         (80 * 10 + 11, 0.5, 0.5, 2.0, 3.0, 0.8),   # shifted by 8 px: suppressed
                         (80 * 40 + 60, 0.5, 0.5, 2.0, 3.0, 0.7),   # far away: kept
                         (80 * 70 + 20, 0.5, 0.5, 2.0, 3.0, 0.2)])  # passes NMS (> 0.1), not > 0.3
    boxes = decode_detections(raw, ratio=2.0)
    assert boxes.shape == (2, 4)
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2 * 2.0, [[84, 84], [484, 324]], atol=1e-3)
    raw[:, 5] = 0.05
    assert decode_detections(raw, ratio=1.0).shape == (0, 4)


def test_simcc_non_positive_scores_map_to_minus_half_pixel():
    sx = np.full((1, 133, 576), -1.0, np.float32)
    sy = np.full((1, 133, 768), -1.0, np.float32)
    sx[0, 0, 100], sy[0, 0, 300] = 0.9, 0.7
    center, scale = np.array([[144.0, 192.0]]), np.array([[288.0, 384.0]])
    kps, scores = decode_simcc(sx, sy, center, scale, (288, 384))
    np.testing.assert_allclose(kps[0, 0], [50.0, 150.0])
    assert scores[0, 0] == np.float32(0.7)
    np.testing.assert_allclose(kps[0, 1], [-0.5, -0.5])


def test_neck_is_a_flag_and_openpose_order():
    kps = np.arange(133 * 2, dtype=np.float64).reshape(1, 133, 2)
    scores = np.full((1, 133), 0.9, np.float32)
    scores[0, 6] = 0.2
    out, s = to_openpose(kps, scores)
    assert out.shape == (1, 134, 2) and s[0, 1] == 0.0
    np.testing.assert_allclose(out[0, 1], (kps[0, 5] + kps[0, 6]) / 2)
    np.testing.assert_allclose(out[0, 2], kps[0, 6])  # r_shoulder <- COCO 6
    np.testing.assert_allclose(out[0, 5], kps[0, 5])  # l_shoulder stays
    np.testing.assert_allclose(out[0, 18:], kps[0, 17:])


def test_missing_file_names_file_folder_and_source(tmp_path):
    with pytest.raises(ModelFileError) as err:
        load_dwpose(tmp_path / "yolox_l.onnx", tmp_path / "dw-ll_ucoco_384.onnx", providers=["CPUExecutionProvider"])
    msg = str(err.value)
    assert "yolox_l.onnx" in msg and str(tmp_path) in msg and "huggingface.co/yzd-v/DWPose" in msg


def test_not_an_onnx_file(tmp_path):
    (tmp_path / "yolox_l.onnx").write_bytes(b"not a model")
    (tmp_path / "dw-ll_ucoco_384.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="yolox_l.onnx"):
        load_dwpose(tmp_path / "yolox_l.onnx", tmp_path / "dw-ll_ucoco_384.onnx", providers=["CPUExecutionProvider"])


def test_wrong_session_shapes_rejected():
    det = FakeSession((1, 3, 640, 640), [(1, 8400, 6)], [])
    pose = FakeSession((1, 3, 384, 288), [(1, 133, 576), (1, 133, 768)], [])
    with pytest.raises(ModelFileError, match="8400, 6"):
        DWPose(det, pose)


def test_swapped_files_are_rejected_with_shapes(tiny_models_dir):
    det = tiny_models_dir / "dwpose" / "yolox_l.onnx"
    pose = tiny_models_dir / "dwpose" / "dw-ll_ucoco_384.onnx"
    with pytest.raises(ModelFileError, match=r"'dw-ll_ucoco_384.onnx' is not the expected DWPose model.*\[1, 3, 384, 288\]"):
        load_dwpose(pose, det, providers=["CPUExecutionProvider"])


def test_tiny_models_load_and_find_one_person(tiny_models_dir):
    model = load_dwpose(tiny_models_dir / "dwpose" / "yolox_l.onnx", tiny_models_dir / "dwpose" / "dw-ll_ucoco_384.onnx")
    frames = np.random.default_rng(0).integers(0, 256, (2, 512, 288, 3), dtype=np.uint8)
    people = model(list(frames))
    assert [len(p.boxes) for p in people] == [1, 1]
    assert people[0].keypoints.shape == (1, 134, 2) and (people[0].scores[0, :18] > 0.3).all()
    x0, y0, x1, y1 = people[0].boxes[0]
    assert 0 <= x0 < x1 <= 288 and 0 <= y0 < y1 <= 512


def test_default_providers_prefer_cuda(monkeypatch):
    import onnxruntime as ort

    from dispose_core.pose.dwpose import default_providers

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider", "CUDAExecutionProvider"])
    assert default_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert default_providers() == ["CPUExecutionProvider"]


def test_normalisation_table_equals_float64_arithmetic():
    crops = np.random.default_rng(0).integers(0, 256, (2, 384, 288, 3), dtype=np.uint8)
    crops[0, 0, :256, 0] = np.arange(256)
    expected = ((crops - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])).astype(np.float32)
    np.testing.assert_array_equal(normalise_crops(crops), expected.transpose(0, 3, 1, 2))


def test_dynamic_sizes_are_accepted_and_batched():
    det = FakeSession(("n", 3, 640, 640), [("n", "anchors", 85)], [[np.zeros((2, 8400, 85), np.float32)]])
    pose = FakeSession(("n", 3, "h", "w"), [("n", 133, 576), ("n", 133, 768)],
                       [[np.zeros((2, 133, 576), np.float32), np.zeros((2, 133, 768), np.float32)]])
    model = DWPose(det, pose)
    people = model([np.zeros((64, 48, 3), np.uint8)] * 2)
    assert model.input_wh == (288, 384) and len(det.fed) == 1 and det.fed[0].shape == (2, 3, 640, 640)
    assert len(pose.fed) == 1 and pose.fed[0].shape == (2, 3, 384, 288) and all(p.fallback for p in people)
