"""bench/gpu/report.py renders gpu_check JSON into the README's Performance table (hand-written sample)."""
from __future__ import annotations

from bench.gpu.report import BEGIN, EMPTY, END, readme_section, render_readme

GIB = 2**30
SAMPLE = {
    "smoke": False, "budget_s": 420,
    "environment": {"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "date": "2027-01-02"},
    "modes": {
        "dispose-fp16": {
            "status": "ran",
            "ours": {"status": "ran", "height": 1024, "width": 576, "frames": 16, "steps": 25,
                     "seconds": {"cmp": 1.5, "dift": 0.25, "encode": 0.5, "sample": 50.0, "decode": 4.0, "job": 56.25},
                     "s_per_step": 2.0, "s_per_frame": {"sample": 3.125, "job": 3.515625},
                     "peak_bytes": {"cmp": {"allocated": GIB, "reserved": 2 * GIB}, "dift": None,
                                    "encode": None, "sample": {"allocated": 12 * GIB, "reserved": 14 * GIB},
                                    "decode": None},
                     "estimate_bytes": {"encode": 2 * GIB, "sample": 10 * GIB, "decode": 3 * GIB}},
            "official": {"status": "ran", "seconds": {"cmp": 3.0, "dift": 1.0, "encode": 1.0, "sample": 100.0,
                                                      "decode": 8.0, "job": 113.0},
                         "peak_bytes": {"cmp": None, "dift": None, "encode": None, "decode": None,
                                        "sample": {"allocated": 20 * GIB, "reserved": 22 * GIB}}},
        },
        "dispose-bf16-compile": {
            "status": "ran",
            "ours": {"status": "ran", "height": 1024, "width": 576, "frames": 16, "steps": 25,
                     "seconds": {"cmp": 1.5, "dift": 0.25, "encode": 0.5, "sample": 80.0, "decode": 4.0, "job": 86.25},
                     "s_per_step": 3.2, "s_per_frame": {"sample": 5.0, "job": 5.390625}, "s_per_step_after_first": 1.5,
                     "peak_bytes": {}, "estimate_bytes": {}}},
        "dispose-bf16-sage-attention": {"status": "skipped: sageattention is not installed"},
    },
}


def test_stage_and_memory_rows_from_a_sample_run():
    lines = readme_section([SAMPLE]).splitlines()
    assert lines[0] == "**NVIDIA H200**, 2027-01-02, torch 2.11.0+cu130:"
    assert "| dispose-fp16 | 1024x576x16 | 1.50 (3.00) | 0.25 (1.00) | 0.50 (1.00) | 50.00 (100.00) | 4.00 (8.00) " \
           "| 56.25 (113.00) | 2.000 | 3.516 |" in lines
    assert "| dispose-bf16-compile | 1024x576x16 | 1.50 (-) | 0.25 (-) | 0.50 (-) | 80.00 (-) | 4.00 (-) | 86.25 (-) " \
           "| 3.200 (1.500 after step 1) | 5.391 |" in lines
    assert "| dispose-bf16-sage-attention | skipped: sageattention is not installed |" + " |" * 8 in lines
    assert "| dispose-fp16 | 1.00/2.00 est - | -/- est - | -/- est 2.00 | 12.00/14.00 est 10.00 (1.20) [20.00/22.00] " \
           "| -/- est 3.00 |" in lines


def test_smoke_runs_are_not_published_and_the_markers_are_kept():
    assert readme_section([dict(SAMPLE, smoke=True)]) == EMPTY
    readme = f"# Title\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    assert render_readme(readme, "new table") == f"# Title\n\n{BEGIN}\nnew table\n{END}\n\nafter\n"
