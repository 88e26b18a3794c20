#!/usr/bin/env python3
"""Write the README's generated sections from the code, so that they cannot drift.

* the model-file table, from ``dispose_core/loading/layout.py`` (MODEL_FILES);
* the node reference, from the node classes (INPUT_TYPES, RETURN_TYPES, tooltips, DESCRIPTION).

    python3 scripts/gen_node_reference.py          # rewrite the sections in README.md
    python3 scripts/gen_node_reference.py --check  # exit 1 if README.md is stale (CI does this)

The node classes are imported without ComfyUI (the pack's comfy bridge falls back), exactly as
the tests import them. Model-file dropdowns list whatever files a machine has, so they are shown
by folder and default, never by the machine's contents.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from dispose_core.loading.layout import MODEL_FILES  # noqa: E402

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
        url, _, note = m.source.partition(" ")
        page = f"[{url.removeprefix('https://')}]({url})" + (f" {note}" if note else "")
        name = f"`{m.name}/` (diffusers folder)" if m.is_dir else f"`{m.name}`"
        rows.append(f"| {name} | `ComfyUI/models/{m.folder}/` | {m.size} | {_cell(page)} | {m.used_by} |")
    return "\n".join(rows)


def _number(v: float | int) -> str:
    if isinstance(v, int) and v >= 2**63 - 1:
        return "2^64-1" if v == 2**64 - 1 else str(v)
    return str(v)


def _values(spec: tuple) -> tuple[str, str, str]:
    """(type, default, allowed values) of one input."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    default = opts.get("default")
    model = next((m for m in MODEL_FILES if isinstance(kind, list) and default == m.name), None)
    if model is not None:
        where = "folder" if model.is_dir else "file"
        return "model", f"`{default}`", f"a {where} in `models/{model.folder}/`"
    if isinstance(kind, list):
        return "choice", f"`{default}`", ", ".join(f"`{v}`" for v in kind)
    allowed = ""
    if "min" in opts or "max" in opts:
        allowed = f"{_number(opts.get('min', '-inf'))} to {_number(opts.get('max', 'inf'))}"
        if opts.get("step") not in (None, 1):
            allowed += f", step {_number(opts['step'])}"
    shown = "" if default is None else f"`{_number(default) if not isinstance(default, bool) else str(default).lower()}`"
    return f"`{kind}`", shown, allowed


def node_section(node_id: str, cls: type, title: str) -> str:
    lines = [f"### {title}", "", f"`{node_id}`: {cls.DESCRIPTION}", ""]
    lines += ["| input | type | default | range / choices | description |", "| --- | --- | --- | --- | --- |"]
    spec = cls.INPUT_TYPES()
    for group in ("required", "optional"):
        for name, item in spec.get(group, {}).items():
            kind, default, allowed = _values(item)
            label = f"`{name}`" + (" (optional)" if group == "optional" else "")
            tip = item[1].get("tooltip", "") if len(item) > 1 else ""
            lines.append(f"| {label} | {kind} | {default} | {_cell(allowed)} | {_cell(tip)} |")
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ("",) * len(cls.RETURN_TYPES)
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    lines += ["", "| output | type | description |", "| --- | --- | --- |"]
    for name, kind, tip in zip(names, cls.RETURN_TYPES, tips):
        lines.append(f"| `{name}` | `{kind}` | {_cell(tip)} |")
    return "\n".join(lines)


def node_reference() -> str:
    from host_utils import load_pack

    pack = load_pack()
    return "\n\n".join(node_section(node_id, cls, pack.NODE_DISPLAY_NAME_MAPPINGS[node_id])
                       for node_id, cls in pack.NODE_CLASS_MAPPINGS.items())


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
            print("README.md is stale: run python3 scripts/gen_node_reference.py", file=sys.stderr)
            return 1
        print("README.md generated sections are up to date")
        return 0
    README.write_text(new, encoding="utf-8")
    print("README.md updated" if new != old else "README.md already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
