"""The pack in the real ComfyUI frontend, driven in headless Debian Chromium.

A real ComfyUI server (``COMFYUI_PATH``) is started with this pack, the input files the workflows
name and a models folder that lacks one file; the frontend (the one ComfyUI ships) then loads
every UI workflow in ``workflows/``, and we check: no node type missing or marked invalid, no two
nodes overlapping once the media previews have loaded, our two frontend extensions registered, the
model-files dialog names the missing file, the status button of the affected loader says so, and
the frame player animates a multi-image output. Screenshots of the main workflow, the panel and
the player are kept under the README's names (``DISPOSE_SCREENSHOT_DIR=docs/images`` refreshes them).

The test runner's Python may lack playwright, so the browser part (test_browser_driver.py) runs as
a subprocess with ComfyUI's Python. Skipped, with the reason, when there is no
ComfyUI, no Chromium or no playwright.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dispose_core.loading.layout import BY_KEY, MODEL_FILES, SVD_SINGLE_FILE
from dispose_core.loading.model_status import DIFFUSERS_PARTS
from host_utils import REPO, ComfyServer, comfy_checkout, comfy_python
from test_browser_driver import CHROMIUM, MAIN_SHOT, PACK_DIR_NAME

MISSING_KEY = "cmp"  # the model file left out of the models folder
EXTENSIONS = ("DisPose.ModelFiles", "DisPose.FramePlayer")
DRIVER = Path(__file__).resolve().parent / "test_browser_driver.py"
# Widgets that core nodes gained after ComfyUI 0.3.64 (whose frontend wrote the UI files), by the
# first ComfyUI version tested that has them: Save in a newer frontend appends their defaults to
# the file's values. ComfyUI 0.33.0 added CreateVideo's bit_depth and, in SaveVideo, the h264
# encoding mode nested under format.codec plus a hidden top-level codec.
ADDED_CORE_WIDGETS = {(0, 33, 0): {"CreateVideo": ("bit_depth",), "SaveVideo": ("format.codec.encoding", "codec")}}

pytestmark = pytest.mark.browser


def _models_without(root: Path, tiny: Path, missing_key: str) -> Path:
    """A models folder without one model: the tiny models (linked) where the factory writes them,
    placeholders for the others (the panel checks presence; the real run below needs only DWPose);
    also the SVD single file, which the KSampler workflow's loaders name."""
    for m in MODEL_FILES + (SVD_SINGLE_FILE,):
        (root / m.folder).mkdir(parents=True, exist_ok=True)
        target = m.path_in(root)
        if m.key == missing_key:
            continue
        if m.path_in(tiny).exists():
            target.symlink_to(m.path_in(tiny), target_is_directory=m.is_dir)
        elif m.is_dir:
            for part in DIFFUSERS_PARTS.get(m.key, ()):
                (target / part).mkdir(parents=True, exist_ok=True)
            (target / "model_index.json").write_text("{}")
        else:
            target.write_bytes(b"placeholder")
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_models_dir) -> dict:
    comfy = comfy_checkout()
    py = comfy_python(comfy)
    from test_host_comfyui import write_inputs  # reference.png + driving.mp4 the tiny DWPose detects

    inst = tmp_path_factory.mktemp("comfy_instance")
    models = _models_without(tmp_path_factory.mktemp("models"), tiny_models_dir, MISSING_KEY)
    server = ComfyServer(comfy, inst, models)
    late_file = BY_KEY[MISSING_KEY].path_in(models)
    inputs = tmp_path_factory.mktemp("inputs")
    write_inputs(inputs)
    try:
        assert f"Cannot import {inst / 'custom_nodes' / PACK_DIR_NAME}" not in server.log(), server.log()[-4000:]
        out = tmp_path_factory.mktemp("browser")
        workflows = sorted(str(p) for p in (REPO / "workflows").glob("*.json")
                           if not p.name.endswith("_api.json"))
        run = subprocess.run([py, str(DRIVER), "--port", str(server.port), "--out", str(out),
                              "--instance", str(inst), "--inputs", str(inputs),
                              "--late-file", str(late_file), *workflows],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"browser driver failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        result = json.loads((out / "report.json").read_text())
        result["workflow_files"] = workflows
        result["out"] = str(out)
        if os.environ.get("DISPOSE_SCREENSHOT_DIR"):
            dest = Path(os.environ["DISPOSE_SCREENSHOT_DIR"])
            dest.mkdir(parents=True, exist_ok=True)
            for png in out.glob("*.png"):
                shutil.copy(png, dest / png.name)
        return result
    finally:
        server.stop()


def test_extensions_registered_and_served(report):
    for name in EXTENSIONS:
        assert name in report["extensions"], report["extensions"]
    served = [u for u in report["server_extensions"] if PACK_DIR_NAME in u]
    assert any(u.endswith("model_files.js") for u in served) and any(u.endswith("frame_player.js") for u in served)
    assert not report["extension_errors"], report["extension_errors"]
    assert not report["page_errors"], report["page_errors"]


def test_every_ui_workflow_loads_without_missing_or_invalid_nodes(report):
    assert report["workflow_files"], "no UI workflows in workflows/"
    loaded = {w["file"]: w for w in report["workflows"]}
    for path in report["workflow_files"]:
        res = loaded[path]
        assert res["nodes"], f"{path}: empty graph"
        assert not res["missing"], f"{path}: missing node types {res['missing']}"
        assert not res["invalid"], f"{path}: invalid/placeholder nodes {res['invalid']}"
        assert not [t for t in res["toasts"] if "Invalid workflow" in t], res["toasts"]
        assert any(n["type"].startswith("DisPose") for n in res["nodes"]), f"{path}: none of our nodes"


def _added_core_widgets(comfyui_version: str, node_type: str) -> tuple[str, ...]:
    version = tuple(int(part) for part in comfyui_version.split(".")[:3])
    return tuple(name for since, added in ADDED_CORE_WIDGETS.items() if version >= since
                 for name in added.get(node_type, ()))


def _added_pack_widgets(node_type: str) -> tuple[str, ...]:
    """Widgets our nodes gained after V1 (optional, appended): a workflow saved before has no
    values for them, and the frontend appends their defaults."""
    from test_nodes_schema import ADDED_INPUTS

    return tuple(name for name, kind, *_ in ADDED_INPUTS.get(node_type, ()) if kind in ("BOOLEAN", "COMBO", "INT",
                                                                                        "FLOAT", "STRING"))


def _saved_values(res: dict, node_id: str) -> list:
    """What Save wrote for a node. Frontend 1.27.10 writes [] for a node without widgets, newer
    ones (1.49.6) leave widgets_values out (None here): both mean no values."""
    values = res["widgets_values"][node_id]
    if values is None:
        assert not any(res["widget_names"][node_id]), (res["file"], node_id, res["widget_names"][node_id])
        return []
    return values


def test_extension_widgets_stay_out_of_saved_workflows_and_prompts(report):
    """The status button and the player are UI only: Save writes the same widget values as the
    file had (followed, in a newer ComfyUI, by the defaults of core widgets added since), and Run
    sends none of their names as node inputs."""
    for res in report["workflows"]:
        original = json.loads(Path(res["file"]).read_text())
        for node in original["nodes"]:
            node_id, where = str(node["id"]), (res["file"], node["type"])
            saved, in_file = _saved_values(res, node_id), node.get("widgets_values", [])
            assert saved[:len(in_file)] == in_file, where
            names = res["widget_names"][node_id]
            added = tuple(names[len(in_file):len(saved)])
            ours = tuple(n for n in _added_pack_widgets(node["type"]) if n not in names[:len(in_file)])
            assert added == _added_core_widgets(report["comfyui_version"], node["type"]) + ours, (*where, added)
        for inputs in res["prompt_inputs"].values():
            assert not {"dispose_model_files", "dispose_frame_player"} & set(inputs), inputs


def _overlap(a: list[float], b: list[float]) -> bool:
    """Whether two [x, y, w, h] boxes share area."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(a: list[float], b: list[float]) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]


def test_workflow_layout_no_node_overlaps_another(report):
    """Measured in the loaded graph once the reference image and driving video previews have
    grown their nodes: no two nodes (title bar included) overlap, and each lies inside a titled
    group (one per stage, scripts/workflow_layout.py)."""
    for res in report["workflows"]:
        assert res["settled"], f"{res['file']}: node sizes still changing (media previews not loaded?)"
        boxes = res["boxes"]
        assert len(boxes) == len(res["nodes"])
        overlapping = [(a["label"], b["label"]) for a, b in itertools.combinations(boxes, 2)
                       if _overlap(a["box"], b["box"])]
        assert not overlapping, f"{res['file']}: overlapping nodes {overlapping}"
        assert res["groups"] and all(g["title"] for g in res["groups"]), res["groups"]
        outside = [n["label"] for n in boxes if not any(_inside(n["box"], g["box"]) for g in res["groups"])]
        assert not outside, f"{res['file']}: nodes outside every group {outside}"


def test_model_panel_names_the_missing_file(report):
    missing = BY_KEY[MISSING_KEY]
    panel = report["panel"]
    assert [r["name"] for r in panel["rows"] if not r["found"]] == [missing.name]
    assert len(panel["rows"]) == len(report["models_route"]["models"])
    assert missing.name in panel["summary"] and missing.folder in panel["text"]
    assert missing.source.split(" ")[0] in panel["links"]
    focused = report["focused_panel"]
    assert focused["title"].endswith(missing.used_by)
    assert [r["name"] for r in focused["rows"]] == [m.name for m in BY_KEY.values() if m.used_by == missing.used_by]


def test_model_panel_refresh_sees_a_file_copied_in_without_restart(report):
    refreshed = report["refreshed_panel"]
    assert refreshed["rows"] and all(r["found"] for r in refreshed["rows"]), refreshed
    assert refreshed["summary"].startswith("All ")


def test_loader_status_buttons(report):
    labels = report["status_labels"]
    assert labels, "no DisPose loader node in the main workflow"
    for node_type, label in labels.items():
        if node_type == "DisPoseCMPLoader":
            assert "1 of 1 missing" in label, label
        else:
            assert "all" in label and "found" in label, (node_type, label)


def test_frame_player_animates_multi_image_output(report):
    player = report["player"]
    assert player["present"] and player["frames"] == 3
    assert not player["on_unrelated_viewer"], "player added to a preview not fed by a DisPose node"
    assert player["loaded"], "frame image did not load from /view"
    assert len(set(player["labels_seen"])) >= 2, player  # it advanced by itself
    assert player["after_pause"] == player["after_pause_later"], "pause did not stop playback"
    assert player["slider_label"] == "2/3"
    assert player["hidden_when_unfed"]


def test_frame_player_after_a_real_run(report):
    """Run through the frontend (its Run path, websocket 'executed' event): DWPose skeletons into a
    Preview Image node get the player, one frame per pose (reference + driving frames)."""
    run = report["real_run"]
    assert run["status"] == "success", run
    assert run["frames"] == run["images"] and run["images"] > 1, run
    assert run["loaded"], run


def test_main_workflow_screenshot(report):
    shot = Path(report["out"]) / MAIN_SHOT
    assert shot.is_file() and shot.stat().st_size > 20_000
