"""The command line's output path streams: frames are decoded one VAE chunk at a time and written to
the mp4 as they come, so its memory does not grow with the video's length (issue 16's target: at
most 16 bytes per canvas pixel per frame for the whole run; the float32 video alone is 12)."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.mimicmotion import load_mimicmotion
from dispose_core.media import write_video
from dispose_core.sampling.decode import decoded_chunks
from dispose_core.sampling.sampler import decode_video, decoded_images

REPO = Path(__file__).resolve().parent.parent
CHUNK = 4


@pytest.fixture(scope="module")
def vae(tiny_models_dir):
    return load_mimicmotion(BY_KEY["svd"].path_in(tiny_models_dir), BY_KEY["mimicmotion"].path_in(tiny_models_dir)).vae


def _latents(frames: int) -> torch.Tensor:
    return torch.randn(frames, 4, 8, 12, generator=torch.Generator().manual_seed(frames)) * 3


def test_chunks_are_the_batch_without_the_reference_frame(vae):
    latents = _latents(11)
    raw = torch.cat(list(decoded_chunks(vae, latents, CHUNK)))
    expected = (raw[1:] / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)  # the decoder's [-1,1] -> IMAGE [0,1]
    chunks = list(decoded_images(vae, latents, CHUNK))
    assert [c.shape[0] for c in chunks] == [3, 4, 3]  # 11 frames in VAE calls of 4, the reference dropped
    assert torch.equal(torch.cat(chunks), expected)
    assert torch.equal(decode_video(vae, latents, CHUNK), expected)
    assert torch.equal(decode_video(vae, latents, CHUNK, keep_reference_frame=True)[1:], expected)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_video_written_from_chunks_is_the_video_of_the_batch(vae, tmp_path):
    latents = _latents(11)
    batch = write_video(tmp_path / "batch.mp4", decode_video(vae, latents, CHUNK), 12.5)
    streamed = write_video(tmp_path / "streamed.mp4", decoded_images(vae, latents, CHUNK), 12.5)
    assert _md5(batch) == _md5(streamed)
    import av

    with av.open(str(streamed)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape == (64, 96, 3)
    assert np.mean([f.mean() for f in frames]) > 10  # real content, not black frames


CHILD = """
import resource, sys, torch
from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.mimicmotion import load_mimicmotion
from dispose_core.media import write_video
from dispose_core.sampling.sampler import decoded_images
models, frames, height, width, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
vae = load_mimicmotion(BY_KEY["svd"].path_in(models), BY_KEY["mimicmotion"].path_in(models)).vae
latents = torch.randn(frames, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
write_video(out, decoded_images(vae, latents, 8), 8.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak_rss(models: Path, frames: int, height: int, width: int, out: Path) -> int:
    """Peak resident bytes of decoding ``frames`` latents into an mp4 in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(models), str(frames), str(height), str(width), str(out)],
                          cwd=REPO, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def test_decoding_to_a_video_does_not_grow_with_its_length(tiny_models_dir, tmp_path):
    # 48 more frames at 384x512: holding the float32 video would add 12 B/px x 48 x 196608 px = 113 MB,
    # the old list + cat + conversions about 5 times that; streaming adds almost nothing
    height, width, short, long = 384, 512, 9, 57
    base = _peak_rss(tiny_models_dir, short, height, width, tmp_path / "short.mp4")
    peak = _peak_rss(tiny_models_dir, long, height, width, tmp_path / "long.mp4")
    per_pixel_frame = (peak - base) / ((long - short) * height * width)
    assert per_pixel_frame < 4.0, f"{per_pixel_frame:.1f} B per pixel per frame ({base / 1e6:.0f} -> {peak / 1e6:.0f} MB)"
