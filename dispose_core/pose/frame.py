"""All people of one image in the layout the official DWposeDetector returns.

The official pipeline passes a dict ``{bodies: {candidate, subset, score}, hands, hands_score,
faces, faces_score}`` per image; alignment and drawing operate on it with all people. We keep the
same arrays (normalised coordinates) in a small dataclass so the golden cases can be checked
field by field, and convert to/from our one-person-per-frame PoseSequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import PoseSequence

VISIBLE_SCORE = 0.3  # body point visible when its score is strictly above this
BODY = slice(0, 18)
FACE = slice(24, 92)
LEFT_HAND = slice(92, 113)
RIGHT_HAND = slice(113, 134)


def _subset(body_score: np.ndarray) -> np.ndarray:
    """The official subset: 18 * person + j where the body score is > 0.3, else -1."""
    n = body_score.shape[0]
    index = 18 * np.arange(n)[:, None] + np.arange(18)[None, :]
    return np.where(body_score > VISIBLE_SCORE, index, -1).astype(body_score.dtype)


@dataclass
class PoseFrame:
    """One image's people. ``n`` people; hands are all left hands, then all right hands."""

    candidate: np.ndarray  # (n*18, 2) normalised xy
    subset: np.ndarray  # (n, 18) 18*person+j when score > 0.3, else -1
    score: np.ndarray  # (n, 18)
    hands: np.ndarray  # (2n, 21, 2)
    hands_score: np.ndarray  # (2n, 21)
    faces: np.ndarray  # (n, 68, 2)
    faces_score: np.ndarray  # (n, 68)

    @property
    def num_people(self) -> int:
        return int(self.subset.shape[0])

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray, scores: np.ndarray, height: int, width: int) -> "PoseFrame":
        """From the 134-point OpenPose-ordered whole-body output in pixels of a (height, width) image."""
        kps = keypoints / np.array([float(width), float(height)])
        n = kps.shape[0]
        body_score = scores[:, BODY]
        return cls(
            candidate=kps[:, BODY].reshape(n * 18, 2).copy(),
            subset=_subset(body_score),
            score=body_score.copy(),
            hands=np.concatenate([kps[:, LEFT_HAND], kps[:, RIGHT_HAND]], 0),
            hands_score=np.concatenate([scores[:, LEFT_HAND], scores[:, RIGHT_HAND]], 0),
            faces=kps[:, FACE].copy(),
            faces_score=scores[:, FACE].copy(),
        )

    @classmethod
    def from_people(cls, people: list[dict[str, np.ndarray]]) -> "PoseFrame":
        """Several people given as ``track.FIELDS`` dicts (the inverse of ``person``)."""
        score = np.stack([p["body_score"] for p in people])
        return cls(
            candidate=np.concatenate([p["body"] for p in people]),
            subset=_subset(score),
            score=score,
            hands=np.concatenate([np.stack([p["hands"][side] for p in people]) for side in (0, 1)]),
            hands_score=np.concatenate([np.stack([p["hands_score"][side] for p in people]) for side in (0, 1)]),
            faces=np.stack([p["faces"] for p in people]),
            faces_score=np.stack([p["faces_score"] for p in people]),
        )

    @classmethod
    def from_sequence(cls, poses: PoseSequence, frame: int) -> "PoseFrame":
        """The one person of ``poses`` at ``frame`` (subset j or -1 equals 18*0+j for one person)."""
        return cls(
            candidate=poses.body[frame],
            subset=poses.body_subset[frame][None],
            score=poses.body_score[frame][None],
            hands=poses.hands[frame],
            hands_score=poses.hands_score[frame],
            faces=poses.faces[frame][None],
            faces_score=poses.faces_score[frame][None],
        )

    def person(self, i: int) -> dict[str, np.ndarray]:
        """Person ``i`` as the ``track.FIELDS`` of a PoseSequence (hands [left, right]; no subset)."""
        n = self.num_people
        return {
            "body": self.candidate[18 * i:18 * i + 18],
            "body_score": self.score[i],
            "hands": self.hands[[i, n + i]],
            "hands_score": self.hands_score[[i, n + i]],
            "faces": self.faces[i],
            "faces_score": self.faces_score[i],
        }

    def bodies(self) -> np.ndarray:
        """(n, 18, 2) body points per person."""
        return self.candidate.reshape(-1, 18, 2)

    def mapped(self, scale: np.ndarray, offset: np.ndarray) -> "PoseFrame":
        """Every coordinate (bodies, hands, faces; visible or not) mapped by ``xy * scale + offset``."""
        return PoseFrame(
            candidate=self.candidate * scale + offset,
            subset=self.subset,
            score=self.score,
            hands=self.hands * scale + offset,
            hands_score=self.hands_score,
            faces=self.faces * scale + offset,
            faces_score=self.faces_score,
        )
