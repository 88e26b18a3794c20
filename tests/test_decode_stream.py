"""The command line's output path streams: frames are decoded one VAE chunk at a time and written to
the mp4 as they come, so its memory does not grow with the video's length (issue 16's target: at
most 16 bytes per canvas pixel per frame for the whole run; the float32 video alone is 12). The
frames are the same as the whole batch's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dispose_core.loading.layout import BY_KEY
from dispose_core.loading.mimicmotion import load_mimicmotion
from dispose_core.media import write_video
from dispose_core.sampling.decode import decoded_chunks
from dispose_core.sampling.sampler import decode_video, decoded_images

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


def test_video_written_from_chunks_gets_the_frames_of_the_batch(vae, tmp_path, monkeypatch):
    """The encoder receives the same uint8 frames (the mp4 bytes may vary with x264's threads)."""
    from dispose_core import pipeline

    real, written = pipeline.to_uint8, []
    monkeypatch.setattr(pipeline, "to_uint8", lambda images: written.append(real(images)) or written[-1])
    latents = _latents(11)
    write_video(tmp_path / "batch.mp4", decode_video(vae, latents, CHUNK), 12.5)
    from_batch, written[:] = np.concatenate(written), []
    streamed = write_video(tmp_path / "streamed.mp4", decoded_images(vae, latents, CHUNK), 12.5)
    assert np.array_equal(np.concatenate(written), from_batch) and from_batch.shape == (10, 64, 96, 3)
    import av

    with av.open(str(streamed)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape == (64, 96, 3)
    assert np.mean([f.mean() for f in frames]) > 10  # real content, not black frames


def test_each_chunk_is_decoded_only_when_asked_for(vae, monkeypatch):
    calls = []
    real = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    chunks = decoded_images(vae, _latents(11), CHUNK)
    assert calls == []
    next(chunks)
    assert len(calls) == 1  # one VAE call per chunk taken: the next chunk is not decoded yet
    assert sum(1 for _ in chunks) == 2 and len(calls) == 3


def test_the_video_is_written_chunk_by_chunk(vae, tmp_path, monkeypatch):
    """Each chunk is converted and encoded before the next is asked for, so at most one float32
    chunk exists (a batch, or a list of all chunks, would hold the whole video)."""
    from dispose_core import pipeline

    events = []
    real = pipeline.to_uint8
    monkeypatch.setattr(pipeline, "to_uint8", lambda images: events.append(("uint8", len(images))) or real(images))

    def chunks():
        for images in decoded_images(vae, _latents(11), CHUNK):
            events.append(("decoded", len(images)))
            yield images

    write_video(tmp_path / "a.mp4", chunks(), 12.5)
    assert events == [("decoded", 3), ("uint8", 3), ("decoded", 4), ("uint8", 4), ("decoded", 3), ("uint8", 3)]
