#!/usr/bin/env python3
"""Write docs/images/retarget_preview.png: the official linear fit next to per-limb retargeting.

    python3 scripts/retarget_preview.py [--out docs/images/retarget_preview.png] [--frame 7]

The bundled sample's reference pose gets legs 45 % shorter than the driver's; its keypoints go
through the same POSE_KEYPOINT path the DWPose Extract node takes (``pipeline.poses_from_keypoints``),
once with the official alignment and once with ``retarget=True``, and the library's skeleton
renderer draws the reference, one driving frame as it is, and that frame under both modes.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispose_core import pipeline  # noqa: E402
from dispose_core.sample import make_sample  # noqa: E402

LEG_SCALE = 0.55  # the reference's thighs and shins, as a share of the driver's
LEGS = ((8, 9, 10), (11, 12, 13))  # (hip, knee, ankle), OpenPose-18
LABEL_HEIGHT = 28


def short_legged(keypoints: list[dict]) -> list[dict]:
    """The sample's POSE_KEYPOINT with the reference's knees and ankles moved up towards the hips."""
    out = copy.deepcopy(keypoints)
    person = out[0]["people"][0]
    body = np.asarray(person["pose_keypoints_2d"], np.float64).reshape(18, 3)
    for hip, knee, ankle in LEGS:
        thigh, shin = body[knee, :2] - body[hip, :2], body[ankle, :2] - body[knee, :2]
        body[knee, :2] = body[hip, :2] + LEG_SCALE * thigh
        body[ankle, :2] = body[knee, :2] + LEG_SCALE * shin
    person["pose_keypoints_2d"] = body.reshape(-1).tolist()
    return out


def labelled(image: torch.Tensor, text: str) -> np.ndarray:
    panel = (image.numpy() * 255).round().astype(np.uint8)
    strip = np.full((LABEL_HEIGHT, panel.shape[1], 3), 40, np.uint8)
    cv2.putText(strip, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "retarget_preview.png")
    parser.add_argument("--frame", type=int, default=7, help="driving frame shown (0-based)")
    args = parser.parse_args()

    sample = make_sample(num_frames=20)
    reference = torch.from_numpy(sample.reference).float()[None] / 255
    keypoints = short_legged(sample.pose_keypoint)
    k = args.frame + 1  # sequence index: the reference is frame 0
    as_is, linear, limbs = (pipeline.skeleton_preview(pipeline.poses_from_keypoints(
        keypoints, reference, resolution=256, **options)) for options in ({"align": False}, {}, {"retarget": True}))
    panels = [labelled(as_is[0], "reference (short legs)"), labelled(as_is[k], f"driving frame {args.frame}"),
              labelled(linear[k], "official linear fit"), labelled(limbs[k], "per-limb retarget")]
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({row.shape[1]}x{row.shape[0]})")


if __name__ == "__main__":
    main()
