"""The pack works from any clone folder name: ComfyUI-Manager and registry installs use hyphenated
names (comfyui-dispose), which are no valid module names."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resources import REPO, comfy_checkout, golden_dir

FOLDERS = ["comfyui-dispose", "ComfyUI-DisPose"]


def clone(tmp_path: Path, folder: str) -> Path:
    """The working tree (as a clone has it, without .git and caches) in a folder of that name."""
    target = tmp_path / folder
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".git", "__pycache__", "output", ".pytest_cache"))
    return target


@pytest.mark.parametrize("folder", FOLDERS)
def test_test_suite_runs_in_a_hyphenated_clone(tmp_path, folder):
    target = clone(tmp_path, folder)
    env = {**os.environ, "DISPOSE_GOLDEN_DIR": str(golden_dir())}
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_image.py", "-q", "-p", "no:cacheprovider"],
                         cwd=target, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "error" not in run.stdout


# ComfyUI's own loader (nodes.load_custom_node), in a fresh process so the pack is imported once.
LOAD_LIKE_COMFYUI = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import nodes
ok = asyncio.run(nodes.load_custom_node(sys.argv[2]))
print(json.dumps({"ok": ok, "nodes": sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("DisPose")),
                  "web": {k: v for k, v in nodes.EXTENSION_WEB_DIRS.items()}}))
"""
NODE_IDS = ["DisPoseApplyControl", "DisPoseCMPDenseFlow", "DisPoseCMPDenseFlowV2", "DisPoseCMPLoader",
            "DisPoseControlNetLoader", "DisPoseDIFTLoader", "DisPoseDIFTPointEmbed", "DisPoseDIFTPointEmbedV2",
            "DisPoseDWPoseExtract", "DisPoseDWPoseExtractV2", "DisPoseDWPoseLoader", "DisPoseGuidancePreview",
            "DisPoseHybridControlNetApply", "DisPoseMimicMotionConditioning", "DisPoseMimicMotionDecode",
            "DisPoseMimicMotionEuler", "DisPoseMimicMotionLoader", "DisPoseMimicMotionNoise",
            "DisPoseMimicMotionSampler", "DisPoseMimicMotionScheduler", "DisPoseMimicMotionTiles",
            "DisPoseSparseMotionField", "DisPoseSparseMotionFieldV2"]


@pytest.mark.comfy
@pytest.mark.parametrize("folder", FOLDERS)
def test_comfyui_loads_every_node_from_a_hyphenated_clone(tmp_path, folder):
    target = clone(tmp_path, folder)
    run = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(comfy_checkout()), str(target)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["ok"] is True, run.stderr[-3000:]
    assert report["nodes"] == NODE_IDS
    assert report["web"][folder] == str(target / "web")
