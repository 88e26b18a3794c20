"""Pose post-processing time per frame: everything around the two DWPose network runs.

Runs on the synthetic sample at 1024x576 (portrait) with the tiny ONNX models (their raw outputs
have the real shapes; the network time itself is not counted). ``pose_postprocess_rows`` is
imported by bench_motion.py; ``python bench/bench_pose.py [frames]`` prints the table.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dispose_core.image import fit_to_canvas  # noqa: E402
from dispose_core.pose.dwpose import (ImagePeople, crop_people, decode_detections, decode_simcc,  # noqa: E402
                                      letterbox, load_dwpose, normalise_crops, to_openpose)
from dispose_core.pose.extract import extract_poses  # noqa: E402
from dispose_core.pose.render import render_poses  # noqa: E402
from dispose_core.sample import make_sample  # noqa: E402
from dispose_core.tiny.dwpose import write_tiny_models  # noqa: E402


def _ms_per_frame(fn: Callable[[], object], frames: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000 / frames


def pose_postprocess_rows(num_frames: int) -> list[tuple[str, float]]:
    """(stage, ms per frame) for DWPose pre/post-processing, tracking, alignment and rendering."""
    sample = make_sample(num_frames=num_frames, height=1024, width=576, ref_height=1024, ref_width=576,
                         resolution=576)
    frames = list(sample.frames)
    reference = fit_to_canvas(sample.reference, sample.poses.height, sample.poses.width)
    with tempfile.TemporaryDirectory() as tmp:
        det_path, pose_path = write_tiny_models(Path(tmp))
        model = load_dwpose(det_path, pose_path, providers=["CPUExecutionProvider"])

    # network outputs computed once, outside the timings
    boxed = [letterbox(f) for f in frames]
    raw = model.run_detector(np.stack([b.transpose(2, 0, 1) for b, _ in boxed]).astype(np.float32))
    boxes = [decode_detections(raw[i], r) for i, (_, r) in enumerate(boxed)]
    crops = [crop_people(f, b, model.input_wh) for f, b in zip(frames, boxes)]
    simcc_x, simcc_y = model.run_pose(normalise_crops(np.concatenate([c for c, _, _ in crops])))
    centers = np.concatenate([c for _, c, _ in crops])
    scales = np.concatenate([s for _, _, s in crops])
    people = model.estimate([reference] + frames, model.detect_boxes([reference]) + boxes)

    def decode_keypoints():
        return to_openpose(*decode_simcc(simcc_x, simcc_y, centers, scales, model.input_wh))

    def replay(images: list[np.ndarray]) -> list[ImagePeople]:
        return people[:1] if len(images) == 1 else people[1:]

    poses = extract_poses(replay, reference, sample.frames, batch_size=num_frames)
    track = _ms_per_frame(lambda: extract_poses(replay, reference, sample.frames, align=False,
                                                batch_size=num_frames), num_frames)
    aligned = _ms_per_frame(lambda: extract_poses(replay, reference, sample.frames, batch_size=num_frames), num_frames)
    rows = [
        ("letterbox to 640 (detector input)", _ms_per_frame(lambda: [letterbox(f) for f in frames], num_frames)),
        ("YOLOX decode + NMS + person filter",
         _ms_per_frame(lambda: [decode_detections(raw[i], r) for i, (_, r) in enumerate(boxed)], num_frames)),
        ("pose crop (affine warp) + normalise",
         _ms_per_frame(lambda: normalise_crops(np.concatenate(
             [crop_people(f, b, model.input_wh)[0] for f, b in zip(frames, boxes)])), num_frames)),
        ("SimCC decode + 134-point OpenPose order", _ms_per_frame(decode_keypoints, num_frames)),
        ("person choice, tracking, filling", track),
        ("alignment fit + apply", max(aligned - track, 0.0)),
        ("skeleton rendering (2160 canvas + resize)", _ms_per_frame(lambda: render_poses(poses), num_frames + 1)),
    ]
    return rows + [("total pose post-processing", sum(ms for _, ms in rows))]


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [16, 64]
    for n in counts:
        print(f"\npose post-processing, {n} frames at 1024x576 (ms per frame)")
        for name, ms in pose_postprocess_rows(n):
            print(f"  {name:<44} {ms:8.2f}")


if __name__ == "__main__":
    main()
