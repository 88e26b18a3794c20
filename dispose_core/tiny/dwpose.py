"""Tiny DWPose ONNX files with the real names, shapes, dtypes and layouts (no download).

``yolox_l.onnx``: images [1, 3, 640, 640] float32 -> output [1, 8400, 85] (anchors of strides
8/16/32, [dx, dy, log w, log h, sigmoid objectness, 80 sigmoid class scores]). A 1x1 conv per
stride on average-pooled pixels, plus a fixed bump on the stride-32 grid so that exactly one
plausible person box (about 180x410 px on a 512x288 portrait frame, centered) survives NMS.

``dw-ll_ucoco_384.onnx``: input [1, 3, 384, 288] -> simcc_x [1, 133, 576], simcc_y [1, 133, 768].
Each keypoint's SimCC rows are Gaussian bumps at a template whole-body position (a standing
person filling the crop) nudged by the mean colour, scaled by a sigmoid score around 0.7, so
the decoded people look like people and are visible.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..loading.layout import BY_KEY

OPSET = 17
IR_VERSION = 8
# COCO-17 body template (x, y) in the 288x384 crop, as fractions: a standing person, arms down
COCO17 = np.array([[0.50, 0.16], [0.53, 0.14], [0.47, 0.14], [0.56, 0.15], [0.44, 0.15], [0.60, 0.26],
                   [0.40, 0.26], [0.64, 0.40], [0.36, 0.40], [0.66, 0.53], [0.34, 0.53], [0.57, 0.55],
                   [0.43, 0.55], [0.57, 0.71], [0.43, 0.71], [0.57, 0.86], [0.43, 0.86]])


def _template() -> np.ndarray:
    """(133, 2) COCO-WholeBody template: body, feet near the ankles, a face ring, hands at the wrists."""
    rng = np.random.default_rng(7)
    feet = np.repeat(COCO17[[15, 16]], 3, axis=0) + [0, 0.04]
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    face = COCO17[0] + np.stack([0.05 * np.cos(angle), 0.05 * np.sin(angle)], 1)
    hands = np.concatenate([COCO17[9] + rng.normal(0, 0.015, (21, 2)) + [0, 0.03],
                            COCO17[10] + rng.normal(0, 0.015, (21, 2)) + [0, 0.03]])
    return np.concatenate([COCO17, feet, face, hands]).astype(np.float32)


def _const(name: str, value: np.ndarray):
    return numpy_helper.from_array(np.asarray(value), name)


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def detector_graph(rng: np.random.Generator):
    nodes, inits, branches = [], [_const("scale", np.float32(1 / 255))], []
    nodes.append(helper.make_node("Mul", ["images", "scale"], ["x"]))
    for stride in (8, 16, 32):
        n = 640 // stride
        weight = rng.normal(0, 0.1, (85, 3, 1, 1)).astype(np.float32)
        bias = np.full(85, -6.0, np.float32)  # other classes: ~0
        bias[:4] = [0.5, 0.0, np.log(7.0), np.log(16.0)]
        bias[4] = bias[5] = -4.0 if stride == 32 else -12.0
        inits += [_const(f"w{stride}", weight), _const(f"b{stride}", bias), _const(f"shape{stride}", np.array([1, 85, -1]))]
        nodes += [helper.make_node("AveragePool", ["x"], [f"p{stride}"], kernel_shape=[stride, stride], strides=[stride, stride]),
                  helper.make_node("Conv", [f"p{stride}", f"w{stride}", f"b{stride}"], [f"c{stride}"])]
        head = f"c{stride}"
        if stride == 32:  # a bump of objectness/person logits around grid cell (5, 10)
            gy, gx = np.mgrid[0:n, 0:n]
            bump = np.exp(-((gx - 5) ** 2 + (gy - 10) ** 2) / (2 * 1.2 ** 2)).astype(np.float32) * 8.0
            channels = np.zeros((1, 85, 1, 1), np.float32)
            channels[0, 4:6] = 1.0
            inits += [_const("bump", bump[None, None]), _const("bump_channels", channels)]
            nodes += [helper.make_node("Mul", ["bump", "bump_channels"], ["bump85"]),
                      helper.make_node("Add", [head, "bump85"], ["c32b"])]
            head = "c32b"
        nodes.append(helper.make_node("Reshape", [head, f"shape{stride}"], [f"r{stride}"]))
        branches.append(f"r{stride}")
    inits.append(_const("split", np.array([4, 81])))
    nodes += [helper.make_node("Concat", branches, ["cat"], axis=2),
              helper.make_node("Transpose", ["cat"], ["raw"], perm=[0, 2, 1]),
              helper.make_node("Split", ["raw", "split"], ["box", "logits"], axis=2),
              helper.make_node("Sigmoid", ["logits"], ["probs"]),
              helper.make_node("Concat", ["box", "probs"], ["output"], axis=2)]
    return helper.make_graph(
        nodes, "tiny_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])], inits)


def pose_graph(rng: np.random.Generator):
    template = _template()
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["g"]),
             helper.make_node("Reshape", ["g", "flat"], ["f"])]
    inits = [_const("flat", np.array([1, 3])),
             _const("ws", rng.normal(0, 0.1, (3, 133)).astype(np.float32)),
             _const("bs", np.full(133, 0.85, np.float32)),
             _const("axis2", np.array([2]))]
    nodes += [helper.make_node("MatMul", ["f", "ws"], ["sl"]), helper.make_node("Add", ["sl", "bs"], ["sl2"]),
              helper.make_node("Sigmoid", ["sl2"], ["score"]),
              helper.make_node("Unsqueeze", ["score", "axis2"], ["score3"])]
    for axis, (name, bins) in enumerate((("simcc_x", 576), ("simcc_y", 768))):
        inits += [_const(f"w_{name}", rng.normal(0, 0.02, (3, 133)).astype(np.float32)),
                  _const(f"t_{name}", (template[:, axis] * bins).astype(np.float32)),
                  _const(f"bins_{name}", np.arange(bins, dtype=np.float32)[None, None]),
                  _const(f"k_{name}", np.float32(bins)),
                  _const(f"g_{name}", np.float32(-1 / (2 * 4.0 ** 2)))]
        nodes += [helper.make_node("MatMul", ["f", f"w_{name}"], [f"o_{name}"]),
                  helper.make_node("Mul", [f"o_{name}", f"k_{name}"], [f"ok_{name}"]),
                  helper.make_node("Add", [f"ok_{name}", f"t_{name}"], [f"c_{name}"]),
                  helper.make_node("Unsqueeze", [f"c_{name}", "axis2"], [f"c3_{name}"]),
                  helper.make_node("Sub", [f"bins_{name}", f"c3_{name}"], [f"d_{name}"]),
                  helper.make_node("Mul", [f"d_{name}", f"d_{name}"], [f"d2_{name}"]),
                  helper.make_node("Mul", [f"d2_{name}", f"g_{name}"], [f"e_{name}"]),
                  helper.make_node("Exp", [f"e_{name}"], [f"bump_{name}"]),
                  helper.make_node("Mul", [f"bump_{name}", "score3"], [name])]
    return helper.make_graph(
        nodes, "tiny_dwpose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 384, 288])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, 576]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, 768])], inits)


def write_tiny_models(models_dir: Path) -> list[Path]:
    """Write both tiny DWPose files under ``models_dir/dwpose/`` (deterministic)."""
    rng = np.random.default_rng(0)
    return [_save(detector_graph(rng), BY_KEY["dwpose_detector"].path_in(models_dir)),
            _save(pose_graph(rng), BY_KEY["dwpose_pose"].path_in(models_dir))]
