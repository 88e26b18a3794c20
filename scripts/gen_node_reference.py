#!/usr/bin/env python3
"""Write the README's generated sections from the code, so that they cannot drift.

* the model-file table, from ``dispose_core/loading/layout.py`` (MODEL_FILES);
* the node reference, from the nodes' V3 schemas (inputs, outputs, tooltips, descriptions).

    COMFYUI_PATH=/path/to/ComfyUI /path/to/comfy/python scripts/gen_node_reference.py          # rewrite
    COMFYUI_PATH=/path/to/ComfyUI /path/to/comfy/python scripts/gen_node_reference.py --check  # exit 1 if stale

The nodes are V3 ``io.ComfyNode`` classes, so ComfyUI must be importable: COMFYUI_PATH names the
checkout and the script runs with a Python that has ComfyUI's requirements (the same as the
tests, see tests/resources.py; bash scripts/test.sh builds such a host). Model-file dropdowns
list whatever files a machine has, so they are shown by folder and default, never by contents.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import resources  # noqa: E402  (puts ComfyUI from COMFYUI_PATH on sys.path)
from dispose_core.loading.layout import MODEL_FILES, SVD_SINGLE_FILE  # noqa: E402

SECTIONS = ("model-files", "node-reference")


def markers(section: str) -> tuple[str, str]:
    return (f"<!-- BEGIN GENERATED {section}: scripts/gen_node_reference.py, do not edit -->",
            f"<!-- END GENERATED {section} -->")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def model_files_table() -> str:
    rows = ["| file (exact name) | put it into | size | download page | used by |",
            "| --- | --- | --- | --- | --- |"]
    for m in MODEL_FILES:
        rows.append(_model_row(m, f"`{m.name}/` (diffusers folder)" if m.is_dir else f"`{m.name}`"))
        if m.key == "svd":  # the single file ComfyUI's own SVD workflows use, instead of the folder
            rows.append(_model_row(SVD_SINGLE_FILE, f"or `{SVD_SINGLE_FILE.name}` (single file, instead of "
                                                    "the folder above)"))
    return "\n".join(rows)


def _model_row(m, name: str) -> str:
    url, _, note = m.source.partition(" ")
    page = f"[{url.removeprefix('https://')}]({url})" + (f" {note}" if note else "")
    return f"| {name} | `ComfyUI/models/{m.folder}/` | {m.size} | {_cell(page)} | {m.used_by} |"


def _number(v: float | int) -> str:
    if isinstance(v, int) and v >= 2**63 - 1:
        return "2^64-1" if v == 2**64 - 1 else str(v)
    return str(v)


def _values(item) -> tuple[str, str, str]:
    """(type, default, allowed values) of one V3 input."""
    default, options = getattr(item, "default", None), getattr(item, "options", None)
    model = next((m for m in MODEL_FILES if options is not None and default == m.name), None)
    if model is not None:
        where = "folder" if model.is_dir else "file"
        return "model", f"`{default}`", f"a {where} in `models/{model.folder}/`"
    if options is not None:
        return "choice", f"`{default}`", ", ".join(f"`{v}`" for v in options)
    low, high, step = (getattr(item, k, None) for k in ("min", "max", "step"))
    allowed = ""
    if low is not None or high is not None:
        allowed = f"{_number(low if low is not None else '-inf')} to {_number(high if high is not None else 'inf')}"
        if step not in (None, 1):
            allowed += f", step {_number(step)}"
    shown = "" if default is None else f"`{_number(default) if not isinstance(default, bool) else str(default).lower()}`"
    return f"`{item.io_type}`", shown, allowed


def node_section(cls: type) -> str:
    """The reference of one V3 node class: title, id, description, inputs, outputs."""
    schema = cls.define_schema()
    lines = [f"### {schema.display_name}", "", f"`{schema.node_id}`: {schema.description}", ""]
    lines += ["| input | type | default | range / choices | description |", "| --- | --- | --- | --- | --- |"]
    for item in sorted(schema.inputs, key=lambda i: i.optional):  # required first, as ComfyUI shows them
        kind, default, allowed = _values(item)
        label = f"`{item.id}`" + (" (optional)" if item.optional else "")
        lines.append(f"| {label} | {kind} | {default} | {_cell(allowed)} | {_cell(item.tooltip or '')} |")
    lines += ["", "| output | type | description |", "| --- | --- | --- |"]
    for out in schema.outputs:
        lines.append(f"| `{out.display_name or out.io_type}` | `{out.io_type}` | {_cell(out.tooltip or '')} |")
    return "\n".join(lines)


def node_reference() -> str:
    if resources.COMFY_MISSING:
        raise SystemExit(f"gen_node_reference.py needs ComfyUI: {resources.COMFY_MISSING}")
    from host_utils import pack_nodes

    nodes = list(pack_nodes().values())
    current = [cls for cls in nodes if not cls.define_schema().is_deprecated]
    sections = [node_section(cls) for cls in current]
    legacy = [cls.define_schema() for cls in nodes if cls not in current]
    if legacy:
        lines = ["### Deprecated nodes", "", "Registered only so that workflows saved with them load and run "
                 "unchanged; the frontend hides them from the node search. Each is the node of the same name above "
                 "plus its first release's preview IMAGE output:", ""]
        lines += [f"- `{s.node_id}` ({s.display_name}): outputs "
                  + ", ".join(f"`{o.display_name}`" for o in s.outputs) for s in legacy]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def generated() -> dict[str, str]:
    return {"model-files": model_files_table(), "node-reference": node_reference()}


def render(text: str, sections: dict[str, str]) -> str:
    """``text`` with every generated section replaced; ValueError if a marker pair is missing."""
    for section, body in sections.items():
        begin, end = markers(section)
        if begin not in text or end not in text:
            raise ValueError(f"README.md lacks the markers of section '{section}': {begin} ... {end}")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{body}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    a = ap.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = render(old, generated())
    if a.check:
        if new != old:
            print("README.md is stale: run COMFYUI_PATH=... scripts/gen_node_reference.py", file=sys.stderr)
            return 1
        print("README.md generated sections are up to date")
        return 0
    README.write_text(new, encoding="utf-8")
    print("README.md updated" if new != old else "README.md already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
