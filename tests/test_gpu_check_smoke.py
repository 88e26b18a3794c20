"""bench/gpu_check.py --smoke: every mode runs through the nodes in ComfyUI (CPU, tiny widths) and the
JSON has every field the GPU report reads. Not a timing test: the seconds are only checked to exist."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.gpu.report import PHASES, STAGES
from resources import REPO, comfy_checkout

STATUS_FIELDS = ("attention", "height", "width", "frames", "steps", "seconds", "s_per_step", "s_per_frame", "peak_bytes",
                 "estimate_bytes")


@pytest.mark.comfy
def test_smoke_runs_every_mode_and_writes_every_field(tmp_path):
    out = tmp_path / "gpu_check.json"
    temp = tmp_path / "tmp"  # where the run's temporary model folder goes (and must be gone from)
    temp.mkdir()
    env = {**os.environ, "COMFYUI_PATH": str(comfy_checkout()), "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    env.pop("DISPOSE_REF", None)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not list(temp.glob("gpu_check_models_*")), "the temporary model folder was not deleted (no --keep)"
    assert "OFFICIAL COLUMN SKIPPED: DISPOSE_REF does not name the official sources" in proc.stdout
    result = json.loads(out.read_text())
    modes = result["modes"]
    assert list(modes) == ["dispose-fp16", "dispose-bf16", "mimicmotion-bf16", "dispose-fp8", "dispose-bf16-72f",
                           "dispose-bf16-768", "dispose-bf16-lowvram-4g", "dispose-bf16-core-sampler",
                           "dispose-bf16-compile", "dispose-bf16-easycache", "dispose-bf16-split-attention",
                           "dispose-bf16-sage-attention", "dispose-bf16-flash-attention"]
    for name, package in (("dispose-bf16-sage-attention", "sageattention"), ("dispose-bf16-flash-attention",
                                                                             "flash_attn")):
        assert modes[name]["status"].startswith("skipped: "), name
        assert package in modes[name]["status"], name
    ran = {name: entry["ours"] for name, entry in modes.items() if entry["status"] == "ran"}
    import comfyui_version

    if comfyui_version.__version__ == "0.3.64":  # the pack refuses this version's EasyCache (README: core speed nodes)
        assert modes["dispose-bf16-easycache"]["status"].startswith("skipped: ") and "LazyCache" in \
            modes["dispose-bf16-easycache"]["status"]
        assert len(ran) == 10
    else:
        assert len(ran) == 11
        # EasyCache ran through core SamplerCustomAdvanced and reused steps (8 smoke steps: 2 reused, the
        # cumulative change rates 0.005 and 0.09 against its reuse threshold 0.2, then 0.25 recomputes)
        skipped, total = map(int, ran["dispose-bf16-easycache"]["easycache_steps_skipped"].split("/"))
        assert 0 < skipped < total == 8
    # the models were built with the mode's ComfyUI attention function; the others with ComfyUI's CPU
    # default (sub_quad, without --use-split-cross-attention or --use-pytorch-cross-attention)
    assert ran["dispose-bf16-split-attention"]["attention"] == "split"
    assert {ours["attention"] for name, ours in ran.items() if name != "dispose-bf16-split-attention"} == {"sub_quad"}
    for name in {"dispose-bf16-core-sampler", "dispose-bf16-compile", "dispose-bf16-easycache"} & set(ran):
        assert 0 < ran[name]["s_per_step_after_first"], name  # the second of the 2 smoke steps
    for name, ours in ran.items():
        assert set(STATUS_FIELDS) <= set(ours), name
        assert set(PHASES) <= set(ours["peak_bytes"]) and {"encode", "sample", "decode"} == set(ours["estimate_bytes"])
        assert all(ours["seconds"][s] > 0 for s in ("encode", "sample", "decode", "job")), name
        assert (ours["seconds"]["cmp"] is None) == (name == "mimicmotion-bf16"), name
    # DWPose Extract at resolution 64 / 128 gives 64x64 / 192x128 frames (576 / 768 in the GPU run)
    assert (ran["dispose-bf16"]["height"], ran["dispose-bf16"]["width"], ran["dispose-bf16"]["frames"]) == (64, 64, 4)
    assert (ran["dispose-bf16-768"]["height"], ran["dispose-bf16-768"]["width"]) == (192, 128)
    assert ran["dispose-bf16-72f"]["frames"] == 6
    # fp8 storage halves the UNet + ControlNet bytes the sample phase is estimated with (scales aside)
    assert ran["dispose-fp8"]["estimate_bytes"]["sample"] < ran["dispose-bf16"]["estimate_bytes"]["sample"]
    assert "dispose-fp16" in proc.stdout and "sample s ours (official)" in proc.stdout
