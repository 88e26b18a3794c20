"""The README cannot drift: generated sections are current, and what it points to exists."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_node_reference", REPO / "scripts" / "gen_node_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.comfy
def test_generated_sections_are_current(gen):
    text = README.read_text(encoding="utf-8")
    assert gen.render(text, gen.generated()) == text, \
        "README.md is stale: run COMFYUI_PATH=... scripts/gen_node_reference.py and commit README.md"


def test_generator_replaces_only_between_markers(gen):
    begin, end = gen.markers("model-files")
    text = f"intro\n{begin}\nold table\n{end}\noutro"
    out = gen.render(text, {"model-files": "NEW"})
    assert out == f"intro\n{begin}\nNEW\n{end}\noutro"
    with pytest.raises(ValueError, match="lacks the markers"):
        gen.render("no markers here", {"model-files": "NEW"})


def test_model_table_lists_every_layout_entry(gen):
    from dispose_core.loading.layout import MODEL_FILES

    table = gen.model_files_table()
    for m in MODEL_FILES:
        row = next(line for line in table.splitlines() if f"`{m.name}" in line)
        assert f"models/{m.folder}/" in row and m.size in row and m.source.split(" ")[0] in row


@pytest.mark.comfy
def test_node_reference_covers_every_node_input_and_output(gen):
    from host_utils import pack_nodes

    ref = gen.node_reference()
    deprecated = ref.split("### Deprecated nodes\n", 1)[1]
    for node_id, cls in pack_nodes().items():
        schema = cls.GET_SCHEMA()
        if schema.is_deprecated:  # listed with its outputs, its inputs are the current node's
            line = next(line for line in deprecated.splitlines() if line.startswith(f"- `{node_id}` "))
            assert all(f"`{out.display_name}`" in line for out in schema.outputs), node_id
            continue
        section = ref.split(f"### {schema.display_name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"`{node_id}`" in section
        for item in schema.inputs:
            assert f"| `{item.id}`" in section, (node_id, item.id)
        for out in schema.outputs:
            assert f"| `{out.display_name}` |" in section, (node_id, out.display_name)


@pytest.mark.comfy
def test_number_ranges_and_defaults_come_from_the_node_definitions(gen):
    """Change a default in a node and the reference row changes with it."""
    from comfy_api.latest import io

    class Node(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="X", display_name="X node", description="d", inputs=[
                io.Int.Input("steps", default=31, min=2, max=90, tooltip="t|x"),
                io.Float.Input("cfg", default=2.5, min=0.0, max=9.0, step=0.5),
                io.Combo.Input("mode", options=["a", "b"], default="b", optional=True),
            ], outputs=[io.Image.Output(display_name="frames", tooltip="out")])

    section = gen.node_section(Node)
    assert section.startswith("### X node\n\n`X`: d\n")
    assert "| `steps` | `INT` | `31` | 2 to 90 | t\\|x |" in section
    assert "| `cfg` | `FLOAT` | `2.5` | 0.0 to 9.0, step 0.5 |  |" in section
    assert "| `mode` (optional) | choice | `b` | `a`, `b` |  |" in section
    assert "| `frames` | `IMAGE` | out |" in section


def test_quick_start_commands_unchanged():
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```bash\n(.*?)\n\s*```", quick, re.S) == ["   bash scripts/demo.sh", "   bash scripts/test.sh"]
    assert "(`.ci/run` runs exactly command 2.)" in quick


def test_referenced_files_exist():
    text = README.read_text(encoding="utf-8")
    for path in re.findall(r"\]\(((?:docs|workflows)/[^)]+)\)", text) + re.findall(r"`(workflows/[^`*]+\.json)`", text):
        assert (REPO / path).is_file(), path
    for wf in (REPO / "workflows").glob("*.json"):
        if not wf.name.endswith("_api.json"):
            assert f"workflows/{wf.name}" in text, f"{wf.name} is not described in the README"


def test_api_example_matches_the_api_workflow():
    """The headless example sets node 1's image, node 2's file, node 14's seed and reads node 16."""
    wf = json.loads((REPO / "workflows" / "dispose_mimicmotion_api.json").read_text())
    assert wf["1"]["class_type"] == "LoadImage" and "image" in wf["1"]["inputs"]
    assert wf["2"]["class_type"] == "LoadVideo" and "file" in wf["2"]["inputs"]
    assert wf["14"]["class_type"] == "DisPoseMimicMotionSampler" and "seed" in wf["14"]["inputs"]
    assert wf["16"]["class_type"] == "SaveVideo"
    assert wf["16"]["inputs"]["filename_prefix"] == "video/dispose"  # the file name the example shows


def test_quirk_switches_exist_in_the_code():
    """Every switch the README's quirk table names is a parameter/function of the module it cites."""
    text = README.read_text(encoding="utf-8")
    table = text.split("## Official-code behaviour kept", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "dispose_core." in line]
    assert rows, "no quirk switches listed"
    for row in rows:
        switch = row.rsplit("|", 2)[-2]
        names = re.findall(r"`(\w+)[=(]", switch)
        modules = re.findall(r"`(dispose_core(?:\.\w+)+)`", switch)
        assert names and modules, row
        source = "".join((REPO / (m.replace(".", "/") + ".py")).read_text() for m in modules)
        for name in names:
            assert re.search(rf"\b{name}\b", source), (name, modules)
