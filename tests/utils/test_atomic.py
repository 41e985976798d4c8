import os

import pytest
import torch

from mask_grounding_dino.utils.atomic import atomic_open, atomic_torch_save, atomic_write_json


def test_failed_write_keeps_old_file_and_leaves_no_tmp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write("{ partial")
            raise RuntimeError("killed")
    assert target.read_text().strip() == '{\n  "v": 1\n}'
    assert os.listdir(tmp_path) == ["a.json"]


def test_torch_save_roundtrip_weights_only(tmp_path):
    target = tmp_path / "m.pth"
    atomic_torch_save({"w": torch.arange(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(3))


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "p.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644
