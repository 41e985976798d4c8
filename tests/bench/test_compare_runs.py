"""bench/compare_runs.py: two training folders are called identical only when every logged step and
every checkpoint tensor match bit for bit."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "compare_runs.py"
_spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)


def _run(folder: pathlib.Path, weight: torch.Tensor, losses: list[float]) -> pathlib.Path:
    folder.mkdir(parents=True)
    state = {"model.w": weight, "model.b": torch.zeros(3), "model.count": torch.tensor(7)}
    torch.save({"state_dict": {k: v * 0 for k, v in state.items()}}, folder / "model_epoch_000_step_00001.pth")
    torch.save({"state_dict": state}, folder / "model_epoch_000_step_00010.pth")   # the final one: highest step
    rows = [{"step": 5 * (i + 1), "epoch": 0, "lr": 1e-4, "train_loss": loss} for i, loss in enumerate(losses)]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_identical_runs(tmp_path, capsys):
    w = torch.linspace(0, 1, 6).reshape(2, 3)
    a = _run(tmp_path / "a", w, [3.25, 2.5])
    b = _run(tmp_path / "b", w.clone(), [3.25, 2.5])
    assert compare_runs.main([str(a), str(b)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("identical")


def test_one_ulp_in_one_tensor_is_a_difference(tmp_path):
    w = torch.linspace(0, 1, 6).reshape(2, 3)
    nudged = w.clone()
    nudged[1, 2] = torch.nextafter(nudged[1, 2], torch.tensor(2.0))
    result = compare_runs.compare(str(_run(tmp_path / "a", w, [3.25])), str(_run(tmp_path / "b", nudged, [3.25])))
    assert result["tensors"] == 3 and result["tensors_differing"] == 1
    assert result["examples_differing"] == ["model.w"]
    assert result["steps_differing"] == 0
    assert result["checkpoints"][0].endswith("_step_00010.pth")


def test_a_different_loss_names_the_first_step(tmp_path):
    w = torch.ones(2, 3)
    a = _run(tmp_path / "a", w, [3.25, 2.5, 2.0])
    b = _run(tmp_path / "b", w, [3.25, 2.5000002, 2.1])
    result = compare_runs.compare(str(a), str(b))
    assert result["steps_compared"] == 3 and result["steps_differing"] == 2
    assert result["first_differing_step"] == 10
    assert compare_runs.main([str(a), str(b)]) == 1
