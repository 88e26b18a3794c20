"""Finish the UI-format example workflows after the real frontend serialized the API ones.

    $PY ../shared/comfy-host/ui_check.py --port P --to-ui /tmp/ui workflows/*_api.json
    python3 scripts/workflows_to_ui.py /tmp/ui

For each ``<name>_api.ui.json`` written by the frontend (``app.graph.serialize()``), adds a Note
for every node where a user must choose a file (inputs, model loaders: which file, which
folder, where to download it), keeps seeds fixed, and writes ``workflows/<name>.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispose_core.loading.layout import BY_KEY  # noqa: E402

INPUT_NOTES = {
    "LoadImage": "Reference: one image of the person to animate (full body works best). "
                 "Upload it here or put it into ComfyUI/input/.",
    "LoadVideo": "Driving video: its motion is transferred to the reference. Upload it here or put it into "
                 "ComfyUI/input/. Long videos take long: trim to the frames you need.",
}
LOADER_KEYS = {
    "DisPoseDWPoseLoader": ("dwpose_detector", "dwpose_pose"),
    "DisPoseCMPLoader": ("cmp",),
    "DisPoseDIFTLoader": ("sd15",),
    "DisPoseMimicMotionLoader": ("svd", "mimicmotion"),
    "DisPoseControlNetLoader": ("dispose",),
}


def note_text(node_type: str) -> str | None:
    if node_type in INPUT_NOTES:
        return INPUT_NOTES[node_type]
    if node_type not in LOADER_KEYS:
        return None
    lines = ["Choose the model file(s):"]
    for key in LOADER_KEYS[node_type]:
        m = BY_KEY[key]
        kind = "folder" if m.is_dir else "file"
        lines.append(f"- {kind} {m.name} in ComfyUI/models/{m.folder}/ ({m.size}) from {m.source}")
    return "\n".join(lines)


def fix_seeds(graph: dict) -> dict:
    """Seeds stay fixed after a run (the frontend defaults to 'randomize'), so a re-run is
    reproducible and ComfyUI's cache keeps every finished stage."""
    for node in graph["nodes"]:
        node["widgets_values"] = ["fixed" if v == "randomize" else v for v in node.get("widgets_values", [])]
    return graph


def add_notes(graph: dict) -> dict:
    """One Note per node that needs a user's choice, stacked in a column left of the graph and
    titled with the node it explains."""
    left = min(node["pos"][0] for node in graph["nodes"]) - 440
    y = min(node["pos"][1] for node in graph["nodes"])
    notes = []
    for node in sorted(graph["nodes"], key=lambda n: (n["pos"][1], n["pos"][0])):
        text = note_text(node["type"])
        if text is None:
            continue
        graph["last_node_id"] += 1
        title = node.get("title") or node["properties"].get("Node name for S&R", node["type"])
        notes.append({"id": graph["last_node_id"], "type": "Note", "pos": [left, y], "size": [400, 120],
                      "flags": {}, "order": len(graph["nodes"]) + len(notes), "mode": 0, "inputs": [],
                      "outputs": [], "title": f"Note: {title}", "properties": {}, "widgets_values": [text],
                      "color": "#432", "bgcolor": "#653"})
        y += 160
    graph["nodes"] += notes
    return graph


def main(ui_dir: str) -> None:
    for path in sorted(Path(ui_dir).glob("*_api.ui.json")):
        name = path.name.replace("_api.ui.json", ".json")
        graph = add_notes(fix_seeds(json.loads(path.read_text())))
        (REPO / "workflows" / name).write_text(json.dumps(graph, indent=1) + "\n")
        print("wrote", REPO / "workflows" / name)


if __name__ == "__main__":
    main(sys.argv[1])
