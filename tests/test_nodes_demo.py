"""The main job (scripts/demo.sh -> python -m dispose_core.demo) as a smoke run on tiny models:
it goes through the same pipeline functions as the nodes and writes the video and previews."""
from __future__ import annotations

import av

from dispose_core import demo


def frame_count(path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), frames[0].shape[0], frames[0].shape[1]


def test_smoke_demo_writes_video_and_previews(tmp_path, capsys):
    demo.main(["--out", str(tmp_path), "--frames", "9", "--steps", "1", "--resolution", "64"])
    out = capsys.readouterr().out
    assert "SMOKE RUN" in out and "RANDOM weights" in out and "POSE_KEYPOINT" in out
    assert frame_count(tmp_path / "animation.mp4") == (9, 64, 64)
    assert frame_count(tmp_path / "preview_skeletons.mp4")[0] == 10
    for name in ("motion_field", "dense_flow"):
        assert frame_count(tmp_path / f"preview_{name}.mp4")[0] == 9
    assert (tmp_path / "preview_correspondence.mp4").stat().st_size > 0
    assert str((tmp_path / "animation.mp4").resolve()) in out


def test_demo_with_a_models_folder_runs_dwpose(tiny_models_dir, tmp_path, capsys):
    """``--models`` takes the real-model path (DWPose on the frames instead of ground truth)."""
    demo.main(["--models", str(tiny_models_dir), "--out", str(tmp_path), "--frames", "4", "--steps", "1",
               "--resolution", "64"])
    out = capsys.readouterr().out
    assert "SMOKE RUN" not in out and "DWPose: 5/5" in out
    assert frame_count(tmp_path / "animation.mp4") == (4, 64, 64)
