"""PoseNet's input frames, handed out one tile at a time.

The sampler runs PoseNet per tile (the official pipelines run it once over the whole video and
keep its output, 10 bytes per canvas pixel per frame and CFG half in fp16; PoseNet works frame by
frame, so the result is the same), so the video's pose images and pose latents never exist at
once: a run from keypoints (``RenderedPoses``) draws each tile's
skeletons when the tile runs, and pose images given as such (``PoseImages``: recorded inputs,
the library's ``pose_images`` argument) are only indexed. Either way a tile's PoseNet input is
the same pixels the whole-video rendering gives.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import InputError
from ..types import PoseSequence


class PoseFrames(Protocol):
    """(F, H, W, 3) pose frames on the generation canvas, asked for by frame index."""

    @property
    def num_frames(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]: ...  # (H, W)

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        """(n, H, W, 3) uint8, or float in [0, 1]."""
        ...


@dataclass(eq=False)  # identity: the sampler tells the halves' sources apart
class PoseImages:
    """Pose images held as given (uint8 stays uint8: 3 bytes per pixel per frame)."""

    images: torch.Tensor  # (F, H, W, 3) uint8 or float in [0, 1]

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(indices, dtype=torch.long)]


@dataclass(eq=False)
class RenderedPoses:
    """Skeletons drawn from the keypoints for the frames asked for (``pose.render``: the official
    drawing); nothing per frame is kept, so a long video costs a few numbers per frame."""

    poses: PoseSequence

    @property
    def num_frames(self) -> int:
        return self.poses.num_frames

    @property
    def size(self) -> tuple[int, int]:
        return self.poses.height, self.poses.width

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        from ..pose.render import render_poses

        return torch.from_numpy(render_poses(self.poses, frames=[int(i) for i in indices]))


@dataclass(eq=False)
class FrameSubset:
    """Some frames of another source, e.g. a context window's: frame i here is ``indices[i]`` there."""

    source: PoseFrames
    indices: tuple[int, ...]

    @property
    def num_frames(self) -> int:
        return len(self.indices)

    @property
    def size(self) -> tuple[int, int]:
        return self.source.size

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        return self.source.frames([self.indices[int(i)] for i in indices])


def pose_frames(poses: Any) -> PoseFrames:
    """Keypoints (``PoseSequence``) or pose images ((F,H,W,3) uint8 / float array or tensor) -> a
    ``PoseFrames``; anything else is an ``InputError``."""
    if isinstance(poses, (PoseImages, RenderedPoses, FrameSubset)):
        return poses
    if isinstance(poses, PoseSequence):
        return RenderedPoses(poses)
    images = torch.from_numpy(np.ascontiguousarray(poses)) if isinstance(poses, np.ndarray) else poses
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"pose_images must be (F, H, W, 3) RGB frames or DWPose Extract's poses, got "
                         f"{getattr(poses, 'shape', type(poses))}.")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise InputError(f"pose_images must be uint8 or float in [0, 1], got {images.dtype}.")
    return PoseImages(images)


def prefetched_tiles(sources: Sequence[PoseFrames], tiles: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """Each tile's frames from every source, tile by tile; the next tile's are made on a worker
    thread meanwhile (OpenCV's drawing releases the GIL), so drawing skeletons hides behind the
    model's work on the current tile instead of adding to it."""
    def make(k: int) -> list[torch.Tensor]:
        return [source.frames(tiles[k].tolist()) for source in sources]

    if not sources:
        yield from ([] for _ in range(len(tiles)))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose-frames") as worker:
        pending = worker.submit(make, 0)
        for k in range(len(tiles)):
            ready = pending.result()
            if k + 1 < len(tiles):
                pending = worker.submit(make, k + 1)
            yield ready
