"""Tables from gpu_check JSON: the console table of one run, and the README's Performance section
rendered from every run in bench/results/; the README's VRAM estimate per phase and benchmark mode
from the memory model at the real widths (never typed by hand).

    python3 bench/gpu/report.py            # rewrite README.md between the performance and VRAM markers
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
BEGIN, END = "<!-- performance:begin (bench/gpu/report.py) -->", "<!-- performance:end -->"
STAGES = ("cmp", "dift", "encode", "sample", "decode", "job")
PHASES = ("cmp", "dift", "encode", "sample", "decode")
VRAM_BEGIN, VRAM_END = "<!-- vram-estimate:begin (bench/gpu/report.py) -->", "<!-- vram-estimate:end -->"
EMPTY = "No GPU run exists yet: the first task lent a GPU runs bench/gpu_check.py (see bench/gpu/README.md)."
GIB = 2**30


def _seconds(side: dict | None, stage: str) -> str:
    if not side or side.get("status") != "ran":
        return "-"
    value = side["seconds"].get(stage)
    return "-" if value is None else f"{value:.2f}"


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


def stage_rows(result: dict) -> list[str]:
    """Markdown rows: mode | stage seconds ours (official) ... | s/step | s/frame."""
    rows = ["| mode | size | " + " | ".join(f"{s} s ours (official)" for s in STAGES) + " | s/step | s/frame |",
            "|" + " --- |" * (len(STAGES) + 4)]
    for name, entry in result["modes"].items():
        ours, off = entry.get("ours"), entry.get("official")
        if entry["status"] != "ran":
            rows.append(f"| {name} | {entry['status']} |" + " |" * (len(STAGES) + 2))
            continue
        size = f"{ours['height']}x{ours['width']}x{ours['frames']}"
        cells = [f"{_seconds(ours, s)} ({_seconds(off, s)})" for s in STAGES]
        after = ours.get("s_per_step_after_first")  # core sampler modes: without TorchCompileModel's compilation
        step = f"{ours['s_per_step']:.3f}" + (f" ({after:.3f} after step 1)" if after is not None else "")
        rows.append(f"| {name} | {size} | " + " | ".join(cells) + f" | {step} | {ours['s_per_frame']['job']:.3f} |")
    return rows


def memory_rows(result: dict) -> list[str]:
    """Markdown rows: mode | per phase peak allocated / reserved GiB and measured/estimated, then the
    official run's peak where it measured one."""
    rows = ["| mode | " + " | ".join(f"{p} GiB alloc/reserved, est (meas/est) [official]" for p in PHASES) + " |",
            "|" + " --- |" * (len(PHASES) + 1)]
    for name, entry in result["modes"].items():
        ours = entry.get("ours")
        if not ours:
            continue
        official = (entry.get("official") or {}).get("peak_bytes") or {}
        cells = []
        for p in PHASES:
            peak, est = ours["peak_bytes"].get(p) or {}, ours["estimate_bytes"].get(p)
            ratio = f" ({peak['allocated'] / est:.2f})" if est and peak.get("allocated") else ""
            theirs = official.get(p) or {}
            measured = (f" [{_gib(theirs['allocated'])}/{_gib(theirs.get('reserved'))}]"
                        if theirs.get("allocated") is not None else "")
            cells.append(f"{_gib(peak.get('allocated'))}/{_gib(peak.get('reserved'))} est {_gib(est)}{ratio}{measured}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def format_table(result: dict) -> str:
    """The console table of one run (ours and official columns per stage, then memory)."""
    gpu = result["environment"].get("gpu") or "CPU"
    head = f"gpu_check on {gpu} ({'smoke, tiny widths' if result['smoke'] else 'real widths'}), seconds per stage:"
    return "\n".join([head, *stage_rows(result), "", "peak memory per phase:", *memory_rows(result)])


def readme_section(results: list[dict]) -> str:
    """The README's Performance block for these runs (GPU runs only), or the empty-state line."""
    runs = [r for r in results if not r["smoke"] and r["environment"].get("gpu")]
    if not runs:
        return EMPTY
    parts = []
    for r in runs:
        env = r["environment"]
        parts += [f"**{env['gpu']}**, {env['date']}, torch {env['torch']}:", "", *stage_rows(r), "",
                  *memory_rows(r), ""]
    return "\n".join(parts).rstrip()


def vram_estimate_section() -> str:
    """The README's VRAM estimate: per benchmark mode at the real widths and the GPU run's sizes, each
    phase's weights + working memory (``memory_required``) = total, in GiB. Modes that differ only in
    how they sample (compile, EasyCache, attention backends) share an earlier mode's row."""
    from bench.gpu.memory_model import mode_estimates
    from bench.gpu.modes import MODES, SETTINGS, TILE
    from dispose_core.image import target_size

    phases = ("encode", "sample", "decode")
    rows = ["| mode | frames, HxW, tile | " + " | ".join(f"{p} GiB: weights + working = total" for p in phases)
            + " |", "|" + " --- |" * (len(phases) + 2)]
    seen = set()
    for mode in MODES:
        key = (mode.resolution, mode.frames, mode.precision, mode.weight_dtype, mode.dispose, mode.usable_gib)
        if key in seen:
            continue
        seen.add(key)
        height, width = target_size(1024, 576, mode.resolution)
        estimate = mode_estimates(mode, height=height, width=width, tile=TILE, decode_chunk=SETTINGS["decode_chunk"])
        cells = [f"{_gib(e.weights)} + {_gib(e.working)} = {_gib(e.total)}" for e in (estimate[p] for p in phases)]
        rows.append(f"| {mode.name} | {mode.frames}, {height}x{width}, {TILE} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def render_readme(readme: str, section: str, begin: str = BEGIN, end: str = END) -> str:
    """``readme`` with the text between the markers replaced by ``section``."""
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{section}\n{end}{tail}"


def main() -> int:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    readme = REPO / "README.md"
    text = render_readme(readme.read_text(), readme_section(results))
    readme.write_text(render_readme(text, vram_estimate_section(), VRAM_BEGIN, VRAM_END))
    print(f"README.md: performance section from {len(results)} result file(s), VRAM estimate from the memory model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
