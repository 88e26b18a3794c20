"""The pack works from any clone folder name: ComfyUI-Manager and registry installs use hyphenated
names (comfyui-dispose), which are no valid module names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resources import REPO, golden_dir

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
