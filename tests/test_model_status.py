"""Model-files panel logic: what is found, where, and what is reported missing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispose_core.loading.layout import MODEL_FILES, MODEL_FOLDERS
from dispose_core.loading.model_status import ALTERNATIVES, DIFFUSERS_PARTS, model_status, status_report


def _populate(root: Path, skip: str | None = None) -> dict[str, list[str]]:
    """Create every model under ``root/<folder>`` except ``skip``; return the search dirs."""
    for m in MODEL_FILES:
        if m.key == skip:
            continue
        target = m.path_in(root)
        if m.is_dir:
            for part in DIFFUSERS_PARTS.get(m.key, ()):
                (target / part).mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"x" * 7)
    return {f: [str(root / f)] for f in MODEL_FOLDERS}


def test_all_found(tmp_path):
    report = status_report(_populate(tmp_path))
    assert report["all_found"] and report["missing"] == 0
    assert report["total"] == len(MODEL_FILES)
    for row in report["models"]:
        assert row["found"] and Path(row["path"]).exists(), row
        assert row["message"] is None
        if not row["is_dir"]:
            assert row["bytes_on_disk"] == 7
    json.dumps(report)  # the route returns it as JSON


def test_missing_file_is_named_with_folder_and_source(tmp_path):
    dirs = _populate(tmp_path, skip="cmp")
    report = status_report(dirs)
    assert report["missing"] == 1 and not report["all_found"]
    (row,) = [r for r in report["models"] if not r["found"]]
    assert row["name"] == "ckpt_iter_42000.pth.tar" and row["folder"] == "cmp"
    assert row["searched"] == dirs["cmp"] and row["path"] is None
    assert "ckpt_iter_42000.pth.tar" in row["message"] and "huggingface.co" in row["message"]
    assert row["used_by"] == "CMP Loader (DisPose)"


def test_search_order_and_extra_dirs(tmp_path):
    """A file only in a second (extra_model_paths) directory is found there; the first dir wins."""
    first, extra = tmp_path / "a", tmp_path / "b"
    (extra / "DisPose.pth").parent.mkdir(parents=True)
    (extra / "DisPose.pth").write_bytes(b"1")
    (row,) = [s for s in model_status({"dispose": [first, extra]}) if s.key == "dispose"]
    assert row.found and row.path == str(extra / "DisPose.pth")
    assert row.searched == [str(first), str(extra)]
    first.mkdir()
    (first / "DisPose.pth").write_bytes(b"22")
    (row,) = [s for s in model_status({"dispose": [first, extra]}) if s.key == "dispose"]
    assert row.path == str(first / "DisPose.pth") and row.bytes_on_disk == 2


def test_diffusers_folder_rules(tmp_path):
    svd = next(m for m in MODEL_FILES if m.key == "svd")
    folder = svd.path_in(tmp_path)
    folder.mkdir(parents=True)
    (folder / "vae").mkdir()
    dirs = {svd.folder: [str(tmp_path / svd.folder)]}
    (folder / "model_index.json").write_text("{}")  # not enough: the loaders read the sub-folders
    (row,) = [s for s in model_status(dirs, [svd])]
    expected = [p for p in DIFFUSERS_PARTS["svd"] if p != "vae"]
    assert not row.found and row.missing_parts == expected
    assert f"lacks: {', '.join(expected)}" in status_report(dirs, [svd])["models"][0]["message"]
    for part in expected:
        (folder / part).mkdir()
    assert model_status(dirs, [svd])[0].found


def test_tiny_diffusers_folders_have_every_part(tiny_models_dir):
    """The tiny factory mirrors the real folders: each one it writes counts as found."""
    written = [m for m in MODEL_FILES if m.is_dir and m.path_in(tiny_models_dir).is_dir()]
    assert written, "the tiny factory wrote no diffusers folder"
    dirs = {f: [str(tiny_models_dir / f)] for f in MODEL_FOLDERS}
    for row in model_status(dirs, written):
        assert row.found, (row.name, row.missing_parts)


def test_a_file_where_a_folder_is_expected_is_missing(tmp_path):
    sd = next(m for m in MODEL_FILES if m.key == "sd15")
    sd.path_in(tmp_path).parent.mkdir(parents=True)
    sd.path_in(tmp_path).write_text("not a folder")
    assert not model_status({sd.folder: [sd.path_in(tmp_path).parent]}, [sd])[0].found


def test_unregistered_folder_searches_nothing():
    report = status_report({})
    assert report["missing"] == len(MODEL_FILES)
    assert all(r["searched"] == [] for r in report["models"])


@pytest.mark.comfy
def test_route_module_reports_comfys_folders(tmp_path):
    """nodes/model_status.py in ComfyUI: the report covers folder_paths' search dirs; no route
    without a running server."""
    import importlib

    from host_utils import load_pack, model_dirs

    load_pack()
    route = importlib.import_module("comfyui_dispose_pack.nodes.model_status")
    _populate(tmp_path, skip="dispose")
    with model_dirs(tmp_path):
        report = route.models_report()
    assert [r["name"] for r in report["models"] if not r["found"]] == ["DisPose.pth"]
    assert report["models"][0]["searched"] == [str(tmp_path / MODEL_FILES[0].folder)]
    assert route.register_routes() is False  # no PromptServer here


def test_missing_sd15_mentions_the_single_file_alternative(tmp_path):
    report = status_report(_populate(tmp_path, skip="sd15"))
    (row,) = [r for r in report["models"] if not r["found"]]
    assert row["alternative"] == ALTERNATIVES["sd15"] and "models/checkpoints/" in row["message"]
    assert all(r["alternative"] is None for r in report["models"] if r["key"] not in ALTERNATIVES)


def test_svd_single_file_stands_in_for_the_folder(tmp_path):
    """Without the SVD folder the entry is missing and names the single file; with
    checkpoints/svd_xt_1_1.safetensors present it counts as found there."""
    dirs = _populate(tmp_path, skip="svd") | {"checkpoints": [str(tmp_path / "checkpoints")]}
    report = status_report(dirs)
    (row,) = [r for r in report["models"] if not r["found"]]
    assert row["key"] == "svd" and "svd_xt_1_1.safetensors" in row["message"]
    assert "models/checkpoints/" in row["alternative"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "svd_xt_1_1.safetensors").write_bytes(b"x" * 5)
    report = status_report(dirs)
    assert report["all_found"] is True
    (row,) = [r for r in report["models"] if r["key"] == "svd"]
    assert row["path"] == str(tmp_path / "checkpoints" / "svd_xt_1_1.safetensors") and row["bytes_on_disk"] == 5
    assert row["searched"] == [str(tmp_path / "diffusers"), str(tmp_path / "checkpoints")]
