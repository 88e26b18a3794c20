"""bench/gpu_check.py --smoke with the official comparator (lihxxx/DisPose in its pinned environment,
``bash bench/gpu/prepare.sh --cpu``): the official column is filled for the mode that has one, every
stage field is in its JSON, and every official module received all of our weights. Runs only where
that environment exists (it is never committed: the upstream code has no licence)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu.report import PHASES, STAGES
from resources import REPO, comfy_checkout

REF = Path(os.environ.get("DISPOSE_REF", REPO / ".gpu_carry" / "DisPose"))
REF_PYTHON = Path(os.environ.get("DISPOSE_REF_PYTHON", REPO / ".official_env" / "bin" / "python"))
COMPONENTS = {"mimicmotion", "dispose", "cmp", "svd_vae", "svd_image_encoder", "sd15_unet", "sd15_vae",
              "sd15_text_encoder"}


@pytest.mark.comfy
@pytest.mark.skipif(not (REF / "inference_ctrl.py").is_file() or not REF_PYTHON.is_file(),
                    reason="no official sources/environment (bash bench/gpu/prepare.sh --cpu)")
def test_smoke_fills_the_official_column(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "COMFYUI_PATH": str(comfy_checkout()), "OMP_NUM_THREADS": "1", "DISPOSE_REF": str(REF),
           "DISPOSE_REF_PYTHON": str(REF_PYTHON)}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OFFICIAL COLUMN SKIPPED" not in proc.stdout and "OFFICIAL dispose-fp16" not in proc.stdout
    modes = json.loads(out.read_text())["modes"]
    with_official = {name for name, entry in modes.items() if "official" in entry}
    assert with_official == {"dispose-fp16"}
    off = modes["dispose-fp16"]["official"]
    assert off["status"] == "ran", off["status"]
    assert all(off["seconds"][s] > 0 for s in STAGES + ("load",)), off["seconds"]
    assert set(PHASES) == set(off["peak_bytes"]) and {"sample", "job"} == set(off["s_per_frame"])
    assert off["s_per_step"] == pytest.approx(off["seconds"]["sample"] / 2)  # smoke: 2 steps
    # the same job as ours: 4 driving frames on the 64x64 canvas, the official run's float16
    assert (off["height"], off["width"], off["frames"], off["dtype"]) == (64, 64, 4, "float16")
    # every official module got every one of our tensors, none left at its random init
    assert set(off["weights"]) == COMPONENTS
    assert all(v == {"missing": 0, "unexpected": 0} for v in off["weights"].values()), off["weights_unmatched"]
    assert off["finite"]
    row = re.search(r"^\| dispose-fp16 \| 64x64x4 \| (.*)$", proc.stdout, re.M).group(1)
    assert len(re.findall(r"\d+\.\d\d \(\d+\.\d\d\)", row)) == len(STAGES), row
