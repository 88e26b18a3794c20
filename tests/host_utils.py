"""Helpers shared by the node, workflow and host tests: importing the pack the way ComfyUI does,
reading its V3 schemas, running its nodes in-process, and a ComfyUI server in a subprocess.

Everything that imports the pack needs ComfyUI importable (marker ``comfy``, see resources.py)."""
from __future__ import annotations

import asyncio
import importlib.abc
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Iterator

from resources import REPO, comfy_checkout, comfy_python  # noqa: F401  (re-exported for the tests)

PACK_NAME = "comfyui_dispose_pack"


class _LibraryAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``<PACK_NAME>.dispose_core[.x]`` to the already importable ``dispose_core[.x]``, so
    the nodes' relative imports and the tests' ``import dispose_core`` share one module tree
    (one ``InputError`` class, one set of module globals)."""

    prefix = f"{PACK_NAME}.dispose_core"

    def find_spec(self, name, path=None, target=None):
        if name == self.prefix or name.startswith(self.prefix + "."):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(spec.name[len(PACK_NAME) + 1:])

    def exec_module(self, module) -> None:
        """Already executed under its own name."""


def load_pack() -> ModuleType:
    """Import the repo root as a package (ComfyUI imports custom_nodes folders this way), once."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    sys.meta_path.insert(0, _LibraryAlias())
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


@cache
def pack_nodes() -> dict[str, type]:
    """Node id -> class, as ComfyUI registers them: from the pack's ``comfy_entrypoint``."""
    extension = asyncio.run(load_pack().comfy_entrypoint())
    return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}


def v1_info(node_id: str) -> dict:
    """What /object_info serves for one of our nodes (ComfyUI's V1 view of the V3 schema): the
    frontend builds widgets, and saved workflows store their values, from this."""
    return pack_nodes()[node_id].GET_NODE_INFO_V1()


@contextmanager
def model_dirs(models_dir: Path) -> Iterator[None]:
    """Point ComfyUI's folder_paths at ``models_dir/<folder>`` for our folders and checkpoints,
    and restore the previous search paths (and file-list cache) afterwards."""
    import folder_paths

    from dispose_core.loading.layout import MODEL_FOLDERS

    load_pack()  # registers our folders first, so they are part of what is restored
    saved = {k: (list(dirs), set(exts)) for k, (dirs, exts) in folder_paths.folder_names_and_paths.items()}
    saved_cache = dict(folder_paths.filename_list_cache)
    try:
        for folder in MODEL_FOLDERS + ("checkpoints",):
            folder_paths.folder_names_and_paths[folder] = ([str(Path(models_dir) / folder)], saved[folder][1])
        folder_paths.filename_list_cache.clear()
        yield
    finally:
        folder_paths.folder_names_and_paths.clear()
        folder_paths.folder_names_and_paths.update(saved)
        folder_paths.filename_list_cache.clear()
        folder_paths.filename_list_cache.update(saved_cache)


# ---------------------------------------------------------------- a real ComfyUI server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """ComfyUI started as a subprocess on 127.0.0.1 with this pack and its own instance folder
    (custom_nodes/, models/, input/, output/), like ../shared/comfy-host/run.sh does."""

    def __init__(self, checkout: Path, instance: Path, models_dir: Path, extra_args: tuple[str, ...] = (),
                 start_timeout: float = 240, extra_nodes: tuple[Path, ...] = (), extra_env: dict | None = None):
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (instance / sub).mkdir(parents=True, exist_ok=True)
        (instance / "custom_nodes" / "comfyui-dispose").symlink_to(REPO, target_is_directory=True)
        for pack in extra_nodes:  # test-only node packs (tests/host_nodes)
            (instance / "custom_nodes" / pack.name).symlink_to(pack, target_is_directory=True)
        (instance / "models").symlink_to(models_dir, target_is_directory=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DIFFUSERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.log_path = instance / "server.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [comfy_python(checkout), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(instance), "--database-url", f"sqlite:///{instance}/user/comfyui.db",
             "--disable-auto-launch", "--disable-api-nodes", "--preview-method", "none", "--log-stdout",
             *extra_args],
            cwd=checkout, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            try:
                self.get("/object_info/DisPoseDWPoseLoader")
                break
            except (OSError, urllib.error.URLError):
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"ComfyUI did not answer in {start_timeout}s:\n{self.log()[-4000:]}")
                time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def _request(self, path: str, data: dict | None = None) -> tuple[int, object]:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> object:
        status, data = self._request(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {data}")
        return data

    def post(self, path: str, data: dict) -> tuple[int, object]:
        return self._request(path, data)

    def queue(self, prompt: dict) -> str:
        """POST /prompt; fails the test on any validation error (also partial ones)."""
        status, data = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status != 200 or data.get("node_errors"):
            raise AssertionError(f"/prompt rejected the workflow (HTTP {status}): {json.dumps(data)[:3000]}")
        return data["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The /history entry once the prompt finished (success, error or interrupt)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            entry = self.history(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            time.sleep(0.25)
        self.post("/interrupt", {})
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()[-3000:]}")

    def is_running(self, prompt_id: str) -> bool:
        queue = self.get("/queue")
        return any(item[1] == prompt_id for item in queue.get("queue_running", []))


def messages(entry: dict, kind: str) -> list[dict]:
    """The payloads of one kind of execution message (execution_error, execution_cached, ...)."""
    return [m[1] for m in entry.get("status", {}).get("messages", []) if m[0] == kind]


# ---------------------------------------------------------------- node graphs called directly
def call_node(node_id: str, **kwargs) -> tuple:
    """Run one node the way ComfyUI's executor does (a class clone, EXECUTE_NORMALIZED); its outputs."""
    cls = pack_nodes()[node_id].PREPARE_CLASS_CLONE({})
    return tuple(getattr(cls, cls.FUNCTION)(**kwargs).result)


def guidance_graph(num_frames: int = 9, resolution: int = 64) -> dict:
    """The sample through DWPose Extract (POSE_KEYPOINT path, every frame kept: sample_stride 1),
    Sparse Motion Field, CMP and DIFT nodes, as the example workflows wire them (run inside
    :func:`model_dirs` of the tiny models)."""
    import torch

    from dispose_core.sample import make_sample

    s = make_sample(num_frames=num_frames)
    ref = torch.from_numpy(s.reference).float()[None] / 255
    out = {"reference": ref, "frames": torch.from_numpy(s.frames).float() / 255, "keypoints_in": s.pose_keypoint}
    out["poses"], out["skeletons"], out["keypoints"], out["fps"] = call_node(
        "DisPoseDWPoseExtract", reference_image=ref, resolution=resolution, align=True,
        pose_keypoint=s.pose_keypoint, sample_stride=1)
    out["motion"], out["motion_preview"] = call_node("DisPoseSparseMotionField", poses=out["poses"],
                                                     kernel_size=199, sigma=20.0)
    (out["cmp"],) = call_node("DisPoseCMPLoader", cmp_checkpoint="ckpt_iter_42000.pth.tar", precision="auto")
    out["flow"], out["flow_preview"] = call_node("DisPoseCMPDenseFlow", cmp_model=out["cmp"], reference_image=ref,
                                                 poses=out["poses"], batch_size=4)
    (dift,) = call_node("DisPoseDIFTLoader", sd15_folder="stable-diffusion-v1-5", precision="fp32")
    out["points"], out["points_preview"] = call_node("DisPoseDIFTPointEmbed", dift_model=dift, reference_image=ref,
                                                     poses=out["poses"], ensemble_size=1, seed=0)
    return out
