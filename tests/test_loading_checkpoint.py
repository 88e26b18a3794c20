"""Strict checkpoint loading: clear errors for missing files and mismatched keys."""
from __future__ import annotations

import pytest
import torch

from dispose_core.errors import CheckpointKeyError, ModelFileError
from dispose_core.loading.checkpoint import load_strict, read_checkpoint


def test_missing_file_names_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError) as err:
        read_checkpoint(tmp_path / "nothing.pth", "CMP")
    assert "nothing.pth" in str(err.value) and str(tmp_path) in str(err.value)


def test_a_directory_in_a_checkpoints_place_is_called_a_directory(tmp_path):
    """e.g. ckpt_iter_42000.pth.tar unpacked into a folder of that name."""
    from dispose_core.loading.layout import BY_KEY
    from dispose_core.pipeline import find_model_file

    (tmp_path / "cmp" / "ckpt_iter_42000.pth.tar").mkdir(parents=True)
    with pytest.raises(ModelFileError) as err:
        read_checkpoint(tmp_path / "cmp" / "ckpt_iter_42000.pth.tar", "CMP")
    assert str(err.value) == f"CMP: 'ckpt_iter_42000.pth.tar' in folder '{tmp_path / 'cmp'}' is a directory, not a file."
    for lookup in (lambda: find_model_file("cmp", [tmp_path / "cmp"]),
                   lambda: BY_KEY["cmp"].require(tmp_path / "cmp" / "ckpt_iter_42000.pth.tar")):
        with pytest.raises(ModelFileError) as err:
            lookup()
        assert str(err.value).startswith(f"'ckpt_iter_42000.pth.tar' in {tmp_path / 'cmp'} is a directory, not the file")
        assert "not found" not in str(err.value)
    (tmp_path / "svd").mkdir()
    (tmp_path / "svd" / "stable-video-diffusion-img2vid-xt-1-1").write_bytes(b"x")  # a file where a folder belongs
    with pytest.raises(ModelFileError, match="is a file, not the folder"):
        find_model_file("svd", [tmp_path / "svd"])


def test_wrong_keys_listed_with_counts(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = dict(module.state_dict())
    sd.pop("1.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["0.weight"] = torch.zeros(5, 5)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointKeyError) as err:
        load_strict(module, read_checkpoint(path), file=path, what="test model")
    msg = str(err.value)
    assert "1 missing keys: 1.bias" in msg
    assert "1 unexpected keys: extra.weight" in msg
    assert "1 tensors with the wrong shape: 0.weight" in msg


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"obj": object()}, path)
    with pytest.raises(ModelFileError):
        read_checkpoint(path)
