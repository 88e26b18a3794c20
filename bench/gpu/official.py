"""The official comparator: lihxxx/DisPose (pinned commit) with diffusers 0.27, in its own environment.

Its sources are never committed (no licence): ``bash bench/gpu/prepare.sh`` copies them into the
ignored carry folder, and ``DISPOSE_REF`` names them. Its pinned environment is the interpreter named
by ``DISPOSE_REF_PYTHON`` (``prepare.sh --cpu`` builds one here; on the device the carried wheels are
installed into their own ``--target`` folder, named by ``DISPOSE_REF_SITE``, which becomes the
official subprocess's only PYTHONPATH entry, with the device's python3 as ``DISPOSE_REF_PYTHON``).
Without both, the official column is skipped, and :func:`availability` says so in one line.

:func:`run` hands the official driver (``official_driver.py``, a subprocess, so diffusers 0.27 never
meets the pack's diffusers) one job folder: the very state dicts our loaders were given
(``weights.RandomCheckpoints``), the configs they were built from, the job's inputs as our nodes
computed them (reference on the canvas, rendered poses, body keypoints) and the settings.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

PINNED_COMMIT = "c38ab1329c756ab18fd0cdf8a49b915986ae37e6"  # the commit the golden cases were made with
DRIVER = Path(__file__).resolve().parent / "official_driver.py"
WEIGHT_FILES = ("mimicmotion", "dispose", "cmp", "svd_vae", "svd_image_encoder", "sd15_unet", "sd15_vae",
                "sd15_text_encoder")


def availability() -> str | None:
    """None when the official pipeline can run, else why not (one line)."""
    ref, python = os.environ.get("DISPOSE_REF"), os.environ.get("DISPOSE_REF_PYTHON")
    if not ref or not (Path(ref) / "inference_ctrl.py").is_file():
        return "DISPOSE_REF does not name the official sources (bash bench/gpu/prepare.sh copies them)"
    if not python or not Path(python).is_file():
        return "DISPOSE_REF_PYTHON does not name the official environment's python (bash bench/gpu/prepare.sh --cpu)"
    return None


def _official_cmp_state(checkpoints) -> dict[str, torch.Tensor]:
    """CMP weights at the official widths, which its code hard-codes (ResNet-50 etc.): ours when the
    run is at real widths, else drawn the same way at the real widths (the smoke run's tiny CMP
    cannot be built by the official classes)."""
    from dispose_core.motion.cmp import CMPConfig

    from .weights import RandomCheckpoints

    if checkpoints.widths.cmp == CMPConfig():
        return checkpoints.state("cmp")
    return RandomCheckpoints(replace(checkpoints.widths, cmp=CMPConfig()), checkpoints.device).state("cmp")


def write_weights(folder: Path, checkpoints) -> None:
    """Every state dict the official models load, as safetensors named by :data:`WEIGHT_FILES`."""
    states = {"mimicmotion": checkpoints.state("mimicmotion"), "dispose": checkpoints.state("dispose"),
              "cmp": _official_cmp_state(checkpoints), **checkpoints.drawn}
    missing = [name for name in WEIGHT_FILES if name not in states]
    if missing:
        raise RuntimeError(f"official comparator: our loaders drew no {missing} (run a DisPose mode first)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in WEIGHT_FILES:
        save_file({k: v.contiguous() for k, v in states[name].items()}, str(folder / f"{name}.safetensors"))


def write_job(folder: Path, *, reference: np.ndarray, poses, sizes: dict, settings: dict, checkpoints,
              sd15_folder: Path, precision: str) -> Path:
    """The job folder: ``inputs.safetensors`` (uint8 reference (H, W, 3) and pose images (F, H, W, 3),
    body keypoints / subset / score per frame, reference first) and ``job.json`` (``sd15_folder``: an
    SD 1.5 folder for its tokenizer and scheduler config, which have no widths)."""
    from dispose_core.pose.render import render_poses

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"reference_u8": torch.from_numpy(np.ascontiguousarray(reference)),
               "poses_u8": torch.from_numpy(render_poses(poses)),
               "body": torch.from_numpy(np.ascontiguousarray(poses.body, np.float32)),
               "body_subset": torch.from_numpy(np.ascontiguousarray(poses.body_subset, np.float32)),
               "body_score": torch.from_numpy(np.ascontiguousarray(poses.body_score, np.float32))},
              str(folder / "inputs.safetensors"))
    widths = checkpoints.widths
    job = {"sizes": sizes, "settings": settings, "precision": precision, "sd15_folder": str(sd15_folder),
           "svd": widths.svd, "sd15": widths.sd15,
           "dims": {"motion_channels": list(widths.dims.motion_channels),
                    "point_embedding_channels": widths.dims.point_embedding_channels,
                    "point_mid_dim": widths.dims.point_mid_dim}}
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    return folder


def _environment() -> dict[str, str]:
    """Our environment minus our PYTHONPATH (the pack's diffusers); the official wheels' folder instead."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if os.environ.get("DISPOSE_REF_SITE"):
        env["PYTHONPATH"] = os.environ["DISPOSE_REF_SITE"]
    return env | {"PYTHONUNBUFFERED": "1"}


def run(job: Path, weights: Path, device: torch.device, timeout_s: float) -> dict:
    """The official pipeline's per-stage figures for the job in ``job`` (see official_driver.py), or
    why there are none: ``{"status": "skipped: ..."}`` / ``{"status": "failed: ..."}``."""
    reason = availability()
    if reason:
        return {"status": f"skipped: {reason}"}
    out = job / "official.json"
    command = [os.environ["DISPOSE_REF_PYTHON"], str(DRIVER), "--job", str(job), "--weights", str(weights),
               "--device", device.type, "--out", str(out)]
    try:
        proc = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: the official driver ran past {timeout_s:.0f} s"}
    (job / "official_driver.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed: {last} (log: {job / 'official_driver.log'})"}
    return json.loads(out.read_text())
