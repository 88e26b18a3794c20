"""Sizes that cannot run are refused up front with one line, and running out of memory gives advice.

Expected sizes are worked out by hand from the bound in dispose_core/limits.py: the animation,
float32 RGB, is 12 bytes per canvas pixel per frame; a 64x64 canvas is 49152 B per frame.
"""
from __future__ import annotations

import pytest
import torch

from dispose_core import demo, limits
from dispose_core.errors import InputError
from dispose_core.image import target_size
from test_demo_cli import write_mp4, write_png

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 227000000000 bytes. Error code 12 (Cannot allocate memory)")  # torch 2.13's text


def test_resolution_above_1024_is_refused():
    assert target_size(1024, 576, 1024) == (1792, 1024)
    with pytest.raises(InputError, match=r"^Resolution 1088 is above 1024.*Lower the resolution"):
        target_size(1024, 576, 1088)


def test_frames_beyond_physical_memory_are_refused_with_how_many_fit(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 300_000)
    limits.check_fits(6, 64, 64)  # 294912 B: fits
    with pytest.raises(InputError) as err:
        limits.check_fits(7, 64, 64)  # 344064 B
    message = str(err.value)
    assert message.startswith("7 frames on a 64x64 canvas cannot fit") and "at most 6 fit" in message
    assert "max_frames" in message and "\n" not in message
    monkeypatch.setattr(limits, "physical_memory", lambda: None)  # unknown: nothing to refuse on
    limits.check_fits(10**6, 64, 64)


def test_out_of_memory_is_recognised_on_cpu_and_device():
    assert limits.is_out_of_memory(RuntimeError(CPU_OOM))
    assert limits.is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB"))
    assert limits.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not limits.is_out_of_memory(RuntimeError("The size of tensor a (4) must match the size of tensor b (5)"))
    assert not limits.is_out_of_memory(MemoryError())


def cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        demo.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_refuses_a_huge_resolution_before_writing_models(capsys, monkeypatch):
    import dispose_core.tiny

    monkeypatch.setattr(dispose_core.tiny, "write_all", lambda *_: pytest.fail("models written before the check"))
    err = cli_error(capsys, ["--resolution", "100000"])
    assert err.startswith("error: Resolution 100000 is above 1024")


def test_cli_refuses_more_frames_than_memory_holds(tmp_path, tiny_models_dir, capsys, monkeypatch):
    """20 frames at 30 fps keep 10; a 96x64 portrait reference at resolution 64 has the long side
    int(64 / (9 / 16) // 64) * 64 = 64, so a 64x64 canvas, 49152 B per frame; 400000 B hold 8."""
    monkeypatch.setattr(limits, "physical_memory", lambda: 400_000)
    err = cli_error(capsys, ["--reference", str(write_png(tmp_path / "ref.png")),
                             "--video", str(write_mp4(tmp_path / "drive.mp4", 30, 20)),
                             "--models", str(tiny_models_dir), "--resolution", "64"])
    assert err.startswith("error: 10 frames on a 64x64 canvas cannot fit") and "at most 8 fit" in err


def test_cli_out_of_memory_gives_advice(tmp_path, tiny_models_dir, capsys, monkeypatch):
    from dispose_core import pipeline

    def oom(*_args, **_kwargs):
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(pipeline, "sparse_motion", oom)
    err = cli_error(capsys, ["--reference", str(write_png(tmp_path / "ref.png")),
                             "--video", str(write_mp4(tmp_path / "drive.mp4", 30, 4)),
                             "--models", str(tiny_models_dir), "--resolution", "64", "--out", str(tmp_path / "o")])
    assert err.startswith("error: out of memory ([enforce fail") and "--max-frames" in err and "--resolution" in err
