"""The command line on the user's own files: python -m dispose_core.demo --reference IMG --video VIDEO.

Inputs are a PNG and an mp4 written here (PyAV, as tests/test_host_comfyui.py does); the models
are the tiny random ones. Expected frame counts and fps follow the official sampling by hand:
20 frames at 30 fps -> stride 2 -> 10 frames at 15 fps; at 60 fps -> stride 4 -> 5 frames at 15 fps.
"""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from dispose_core import demo


def write_mp4(path, fps: int, frames: int, hw=(96, 64)):
    """A driving mp4 whose frame i has the grey level 10 * i in its top row (to see which were kept)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
        container.start_encoding()  # writes the file even with no frames
        for i in range(frames):
            frame = np.full((*hw, 3), 10 * i, np.uint8)
            frame[20 + 2 * i:60 + 2 * i, 16:48] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_png(path, hw=(96, 64)):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)).save(path)
    return path


def video_info(path) -> tuple[int, Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.average_rate


def cli(tmp_path, tiny_models_dir, fps: int, *extra: str):
    out = tmp_path / "out"
    demo.main(["--reference", str(write_png(tmp_path / "ref.png")),
               "--video", str(write_mp4(tmp_path / "drive.mp4", fps, 20)),
               "--models", str(tiny_models_dir), "--out", str(out), "--steps", "1", "--resolution", "64", *extra])
    return out


def test_30fps_clip_gives_10_frames_at_15fps(tmp_path, tiny_models_dir, capsys):
    out = cli(tmp_path, tiny_models_dir, 30)
    assert video_info(out / "animation.mp4") == (10, 15)
    assert video_info(out / "preview_skeletons.mp4") == (11, 15)  # reference + 10
    text = capsys.readouterr().out
    assert "at 30 fps: 10 frames kept" in text and "DWPose: 11/11" in text and "10 animation frames at 15 fps" in text


def test_60fps_clip_gives_a_quarter_of_its_frames(tmp_path, tiny_models_dir):
    assert video_info(cli(tmp_path, tiny_models_dir, 60, "--retarget") / "animation.mp4") == (5, 15)


def test_max_frames_and_skip(tmp_path, tiny_models_dir):
    out = cli(tmp_path, tiny_models_dir, 30, "--max-frames", "3", "--skip-first-frames", "1", "--stride", "1",
              "--smooth-window", "3")
    assert video_info(out / "animation.mp4") == (3, 30)


def test_reader_keeps_the_official_frames(tmp_path):
    from dispose_core.frames import FrameSampling
    from dispose_core.video import video_frames

    frames = video_frames(write_mp4(tmp_path / "v.mp4", 50, 20), FrameSampling())
    levels = [int(f[0, 0, 0]) for f in frames]
    assert frames.fps == 12.5 and frames.source_fps == 50 and len(frames) == 5
    assert levels == pytest.approx([0, 40, 80, 120, 160], abs=3)  # frames 0, 4, 8, 12, 16


class CountingDecoder:
    """Wraps the video module's decoder and its RGB conversion, counting what each produced."""

    def __init__(self, monkeypatch):
        from dispose_core import video

        self.decoded, self.converted = [], []
        decoded, rgb = video.decoded, video.rgb

        def counting_decoded(*args):
            for frame in decoded(*args):
                self.decoded.append(frame.pts)
                yield frame

        def counting_rgb(frame):
            self.converted.append(frame.pts)
            return rgb(frame)

        monkeypatch.setattr(video, "decoded", counting_decoded)
        monkeypatch.setattr(video, "rgb", counting_rgb)


def test_only_the_kept_frames_are_converted_and_decoding_stops_after_the_last(tmp_path, monkeypatch):
    """30 fps, stride 2, skip 3, max 4: frames 3, 5, 7, 9 of 20 (by hand); 10 frames decoded, 4 converted."""
    from dispose_core.frames import FrameSampling
    from dispose_core.video import video_frames

    counter = CountingDecoder(monkeypatch)
    frames = video_frames(write_mp4(tmp_path / "v.mp4", 30, 20), FrameSampling(2, 4, 3))
    levels = [int(f[0, 0, 0]) for f in frames]
    assert levels == pytest.approx([30, 50, 70, 90], abs=3)
    assert len(counter.converted) == 4 and len(counter.decoded) == 10


def test_a_time_window_samples_from_its_first_frame(tmp_path):
    """A trimmed core VIDEO (from 0.5 s, 0.2 s long, at 30 fps: frames 15..20 of 24); stride 2 keeps 15, 17, 19."""
    from dispose_core.video import video_frames

    clip = write_mp4(tmp_path / "v.mp4", 30, 24)
    with open(clip, "rb") as handle:
        frames = video_frames(io.BytesIO(handle.read()), start_time=0.5, duration=0.2)
    assert len(frames) == 3 and [int(f[0, 0, 0]) for f in frames] == pytest.approx([150, 170, 190], abs=3)


def error_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    return err


def test_bad_files_end_with_one_message(tmp_path, tiny_models_dir, capsys):
    png, mp4 = write_png(tmp_path / "ref.png"), write_mp4(tmp_path / "drive.mp4", 30, 4)
    common = ["--models", str(tiny_models_dir), "--out", str(tmp_path / "o"), "--steps", "1", "--resolution", "64"]
    assert "'nope.png' does not exist" in error_of(capsys, ["--reference", "nope.png", "--video", str(mp4)] + common)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert "Cannot read the reference image" in error_of(
        capsys, ["--reference", str(tmp_path / "bad.png"), "--video", str(mp4)] + common)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    assert "Cannot read the driving video" in error_of(
        capsys, ["--reference", str(png), "--video", str(tmp_path / "bad.mp4")] + common)
    empty = write_mp4(tmp_path / "empty.mp4", 30, 0)
    assert "has no frames" in error_of(capsys, ["--reference", str(png), "--video", str(empty)] + common)
    assert "skip_first_frames is 9" in error_of(
        capsys, ["--reference", str(png), "--video", str(mp4), "--skip-first-frames", "9"] + common)


def test_image_without_a_person(tmp_path, tiny_models_dir, capsys, monkeypatch):
    """A detector that finds nobody (zero network outputs, as in tests/test_pose_dwpose.py)."""
    import dispose_core.pose.dwpose as dwpose
    from test_pose_dwpose import FakeSession

    def nobody(*_args, **_kw):
        det = FakeSession((1, 3, 640, 640), [(1, 8400, 85)], [[np.zeros((1, 8400, 85), np.float32)]] * 99)
        pose = FakeSession((1, 3, 384, 288), [(1, 133, 576), (1, 133, 768)],
                           [[np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)]] * 99)
        return dwpose.DWPose(det, pose)

    monkeypatch.setattr(dwpose, "load_dwpose", nobody)
    png, mp4 = write_png(tmp_path / "ref.png"), write_mp4(tmp_path / "drive.mp4", 30, 4)
    err = error_of(capsys, ["--reference", str(png), "--video", str(mp4), "--models", str(tiny_models_dir),
                            "--out", str(tmp_path / "o"), "--steps", "1", "--resolution", "64"])
    assert "No person found in the reference image" in err
