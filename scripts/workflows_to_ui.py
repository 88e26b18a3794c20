"""Finish the UI-format example workflows after the real frontend serialized the API ones.

    $PY64 ../shared/comfy-host/ui_check.py --port P64 --to-ui /tmp/ui64 workflows/*_api.json
    $PY33 ../shared/comfy-host/ui_check.py --port P33 --to-ui /tmp/ui33 workflows/*_api.json
    python3 scripts/workflows_to_ui.py /tmp/ui64 /tmp/ui33

For each ``<name>_api.ui.json`` written by the frontend (``app.graph.serialize()``) into the first
folder, adds a Note for every node where a user must choose a file (inputs, model loaders: which
file, which folder, where to download it), keeps seeds fixed, lays the graph out in one group
per stage (scripts/workflow_layout.py) and writes ``workflows/<name>.json``.

The first folder comes from the oldest supported ComfyUI (0.3.64): its widget values are the ones
every supported frontend reads back (newer ones append defaults for widgets added since). The
other folders hold the same workflows serialized by newer frontends, whose nodes may be larger
(more sockets, wider fonts): each node gets the largest size any of them gave it.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispose_core.loading.layout import BY_KEY, SVD_SINGLE_FILE  # noqa: E402
from dispose_core.loading.model_status import FILE_ALTERNATIVES  # noqa: E402
from workflow_layout import lay_out  # noqa: E402

INPUT_NOTES = {
    "LoadImage": "Reference: one image of the person to animate (full body works best). "
                 "Upload it here or put it into ComfyUI/input/.",
    "LoadVideo": "Driving video: its motion is transferred to the reference. Upload it here or put it into "
                 "ComfyUI/input/. Long videos take long: trim to the frames you need.",
}
NOTE_WIDTH, NOTE_CHARS, NOTE_LINE_HEIGHT = 400, 60, 14  # the Note's text area: chars per line, px per line
NOTE_MIN_HEIGHT = 90  # frontends 1.27.10 and 1.49.6 grow a Note to at least 88
LOADER_KEYS = {
    "DisPoseDWPoseLoader": ("dwpose_detector", "dwpose_pose"),
    "DisPoseCMPLoader": ("cmp",),
    "DisPoseDIFTLoader": ("sd15",),
    "DisPoseMimicMotionLoader": ("svd", "mimicmotion"),
    "DisPoseControlNetLoader": ("dispose",),
    "ImageOnlyCheckpointLoader": (SVD_SINGLE_FILE.key,),  # core's SVD image encoder and VAE
}
MODEL_FILES = {**BY_KEY, SVD_SINGLE_FILE.key: SVD_SINGLE_FILE}


def note_text(node_type: str) -> str | None:
    if node_type in INPUT_NOTES:
        return INPUT_NOTES[node_type]
    if node_type not in LOADER_KEYS:
        return None
    lines = ["Choose the model file(s):"]
    for key in LOADER_KEYS[node_type]:
        m = MODEL_FILES[key]
        kind = "folder" if m.is_dir else "file"
        lines.append(f"- {kind} {m.name} in ComfyUI/models/{m.folder}/ ({m.size}) from {m.source}")
        alt = FILE_ALTERNATIVES.get(key)
        if alt is not None:  # the SVD single file instead of the folder
            lines.append(f"  or file {alt.name} in ComfyUI/models/{alt.folder}/ ({alt.size}), "
                         f"picked as {alt.folder}/{alt.name}")
    return "\n".join(lines)


def fix_seeds(graph: dict) -> dict:
    """Seeds stay fixed after a run (the frontend defaults to 'randomize'), so a re-run is
    reproducible and ComfyUI's cache keeps every finished stage."""
    for node in graph["nodes"]:
        node["widgets_values"] = ["fixed" if v == "randomize" else v for v in node.get("widgets_values", [])]
    return graph


def add_notes(graph: dict) -> dict[int, dict]:
    """One Note per node that needs a user's choice (placed above that node by lay_out);
    returns node id -> its note."""
    notes = {}
    for node in sorted(graph["nodes"], key=lambda n: n["id"]):
        text = note_text(node["type"])
        if text is None:
            continue
        graph["last_node_id"] += 1
        title = "Note: input file" if node["type"] in INPUT_NOTES else "Note: model files"
        notes[node["id"]] = {"id": graph["last_node_id"], "type": "Note", "pos": [0, 0], "size": note_size(text),
                             "flags": {}, "order": len(graph["nodes"]) + len(notes), "mode": 0, "inputs": [],
                             "outputs": [], "title": title, "properties": {}, "widgets_values": [text],
                             "color": "#432", "bgcolor": "#653"}
    graph["nodes"] += notes.values()
    return notes


def note_size(text: str) -> list[float]:
    """NOTE_WIDTH wide and tall enough for the text (wrapped at about NOTE_CHARS per line)."""
    lines = sum(len(textwrap.wrap(line, NOTE_CHARS)) or 1 for line in text.splitlines())
    return [NOTE_WIDTH, max(NOTE_MIN_HEIGHT, 24 + NOTE_LINE_HEIGHT * lines)]


def largest_sizes(graph: dict, others: list[dict]) -> dict:
    """Each node of ``graph`` as large as the largest serialization of it in ``others``."""
    for other in others:
        sizes = {n["id"]: n["size"] for n in other["nodes"]}
        for node in graph["nodes"]:
            node["size"] = [max(a, b) for a, b in zip(node["size"], sizes[node["id"]])]
    return graph


def main(ui_dir: str, *size_dirs: str) -> None:
    for path in sorted(Path(ui_dir).glob("*_api.ui.json")):
        name = path.name.replace("_api.ui.json", ".json")
        others = [json.loads((Path(d) / path.name).read_text()) for d in size_dirs]
        graph = fix_seeds(largest_sizes(json.loads(path.read_text()), others))
        lay_out(graph, add_notes(graph), set(LOADER_KEYS))
        (REPO / "workflows" / name).write_text(json.dumps(graph, indent=1) + "\n")
        print("wrote", REPO / "workflows" / name)


if __name__ == "__main__":
    main(*sys.argv[1:])
