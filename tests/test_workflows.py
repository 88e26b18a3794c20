"""The example workflows: node types exist, links are consistent, UI and API versions agree.

Our node types come from the pack's V3 schemas as /object_info serves them (ComfyUI in-process),
the core ones from tests/data/comfy_core_nodes.json (taken from /object_info of the ComfyUI
version we test with).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from host_utils import REPO, pack_nodes, v1_info

pytestmark = pytest.mark.comfy
WORKFLOWS = REPO / "workflows"
CORE = json.loads((Path(__file__).parent / "data" / "comfy_core_nodes.json").read_text())
PAIRS = ["dispose_mimicmotion", "mimicmotion_plain", "guidance_preview", "dispose_ksampler"]
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}


def node_spec(class_type: str) -> tuple[dict[str, str], list[str]]:
    """(input name -> type, output types) of a node type; types of combos are 'COMBO'."""
    if class_type in pack_nodes():
        info = v1_info(class_type)
        inputs = {name: t[0] for section in ("required", "optional")
                  for name, t in info["input"].get(section, {}).items()}
        return inputs, list(info["output"])
    if class_type in CORE["nodes"]:
        core = CORE["nodes"][class_type]
        return core["inputs"], core["outputs"]
    raise AssertionError(f"unknown node type {class_type}")


def required_inputs(class_type: str) -> set[str]:
    if class_type in pack_nodes():
        return set(v1_info(class_type)["input"]["required"])
    return set()


def load(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def test_every_workflow_is_listed():
    names = {p.stem for p in WORKFLOWS.glob("*.json")}
    assert names == set(PAIRS) | {f"{p}_api" for p in PAIRS}


@pytest.mark.parametrize("name", PAIRS)
def test_api_workflow_links(name):
    api = load(f"{name}_api")
    for node_id, node in api.items():
        inputs, _ = node_spec(node["class_type"])
        assert required_inputs(node["class_type"]) <= set(node["inputs"]), f"node {node_id} lacks inputs"
        for input_name, value in node["inputs"].items():
            assert input_name in inputs, f"node {node_id}: unknown input {input_name}"
            if isinstance(value, list):
                src, slot = value
                assert src in api, f"node {node_id}.{input_name} links to missing node {src}"
                _, outputs = node_spec(api[src]["class_type"])
                assert 0 <= slot < len(outputs), f"node {node_id}.{input_name}: bad output index {slot}"
                assert outputs[slot] == inputs[input_name], f"{node_id}.{input_name}: {outputs[slot]} link"
            else:
                assert inputs[input_name] not in {"IMAGE", "VIDEO"} and not inputs[input_name].startswith(
                    ("DISPOSE_", "MIMICMOTION_")), f"node {node_id}.{input_name} needs a link"


def ui_widget_values(node: dict) -> dict:
    """Widget name -> value of a UI-format node (seed widgets carry an extra control value)."""
    names = [i["name"] for i in node.get("inputs", []) if "widget" in i]
    values = list(node.get("widgets_values", []))
    out = {}
    for name in names:
        out[name] = values.pop(0)
        if values and values[0] in SEED_CONTROLS and name in ("seed", "noise_seed"):
            values.pop(0)
    return out


@pytest.mark.parametrize("name", PAIRS)
def test_ui_workflow_links(name):
    ui = load(name)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for node in nodes.values():
        assert node["type"] in CORE["frontend_only"] or node_spec(node["type"])
    assert ui["last_node_id"] >= max(nodes)
    link_ids = set()
    for link_id, src, src_slot, dst, dst_slot, link_type in ui["links"]:
        link_ids.add(link_id)
        assert link_id in (nodes[src]["outputs"][src_slot]["links"] or [])
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id
        _, outputs = node_spec(nodes[src]["type"])
        inputs, _ = node_spec(nodes[dst]["type"])
        assert outputs[src_slot] == link_type == inputs[nodes[dst]["inputs"][dst_slot]["name"]]
    used = {i["link"] for n in nodes.values() for i in n.get("inputs", []) if i.get("link") is not None}
    used |= {lid for n in nodes.values() for o in n.get("outputs", []) for lid in (o.get("links") or [])}
    assert used == link_ids


@pytest.mark.parametrize("name", PAIRS)
def test_ui_and_api_agree(name):
    api, ui = load(f"{name}_api"), load(name)
    ui_nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] not in CORE["frontend_only"]}
    assert {k: n["type"] for k, n in ui_nodes.items()} == {k: n["class_type"] for k, n in api.items()}
    links = {lid: (str(src), slot) for lid, src, slot, *_ in ui["links"]}
    for node_id, node in api.items():
        ui_node = ui_nodes[node_id]
        widgets = ui_widget_values(ui_node)
        ui_links = {i["name"]: list(links[i["link"]]) for i in ui_node["inputs"] if i.get("link") is not None}
        for input_name, value in node["inputs"].items():
            if isinstance(value, list):
                assert ui_links[input_name] == value, f"{name} node {node_id}.{input_name}"
            else:
                assert widgets[input_name] == value, f"{name} node {node_id}.{input_name}"


@pytest.mark.parametrize("name", PAIRS)
def test_notes_where_files_are_chosen(name):
    ui = load(name)
    notes = " ".join(n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "Note")
    files = {v for n in load(f"{name}_api").values() for k, v in n["inputs"].items()
             if isinstance(v, str) and k.endswith(("_checkpoint", "_folder", "detector", "pose_model"))}
    assert files and all(f in notes for f in files)


@pytest.mark.parametrize("name", PAIRS)
def test_no_deprecated_node(name):
    """The examples use the stage nodes without preview outputs (issue 16): the deprecated first-release
    ones stay registered only for workflows saved before."""
    types = {n["type"] for n in load(name)["nodes"]} | {n["class_type"] for n in load(f"{name}_api").values()}
    deprecated = {t for t in types if t in pack_nodes() and v1_info(t)["deprecated"]}
    assert not deprecated
    assert {"DisPoseDWPoseExtractV2"} <= types
