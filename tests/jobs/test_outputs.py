"""What a finished job passes on (``outputs["model"]``) and reports (metrics), read from the
files its action wrote, in both results layouts: ``<results_dir>/<action>/`` (TAO's rule) and
``<results_dir>`` itself (train before that rule)."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.jobs.artifacts import MONITOR
from mask_grounding_dino.jobs.outputs import collect


def _train_run(folder: pathlib.Path, scores: dict[int, float]) -> None:
    """A checkpoint and a validation record per epoch (4 steps each), and the latest link."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for epoch, score in scores.items():
        step = (epoch + 1) * 4
        (folder / f"model_epoch_{epoch:03d}_step_{step:05d}.pth").write_bytes(b"")
        records.append({"epoch": epoch, "global_step": step, "metrics": {MONITOR: score, "[segm] val_mAP@50": 0.5}})
    (folder / "val_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    os.symlink(f"model_epoch_{max(scores):03d}_step_{(max(scores) + 1) * 4:05d}.pth",
               folder / "mask_gdino_model_latest.pth")


@pytest.mark.parametrize("layout", ["train", "."], ids=["results_dir/train", "results_dir"])
def test_train_passes_on_its_best_checkpoint_in_either_layout(tmp_path, layout):
    folder = tmp_path / layout
    _train_run(folder, {0: 0.3, 1: 0.7, 2: 0.5})
    metrics, outputs = collect("train", str(tmp_path), load_spec())
    assert outputs["folder"] == str(folder)
    assert os.path.basename(outputs["model"]) == "model_epoch_001_step_00008.pth"  # the best, not the latest
    assert os.path.basename(outputs["latest"]) == "model_epoch_002_step_00012.pth"
    assert metrics["best_epoch"] == 1 and metrics[MONITOR] == 0.7 and metrics["last_epoch"] == 2
    assert metrics[f"last {MONITOR}"] == 0.5


def test_train_outputs_come_from_the_action_subfolder_when_both_exist(tmp_path):
    _train_run(tmp_path, {0: 0.9})              # a stale run in the job folder itself
    _train_run(tmp_path / "train", {0: 0.1, 1: 0.2})
    _, outputs = collect("train", str(tmp_path), load_spec())
    assert outputs["model"] == str(tmp_path / "train" / "model_epoch_001_step_00008.pth")


@pytest.mark.parametrize("layout", ["evaluate", "."], ids=["results_dir/evaluate", "results_dir"])
def test_evaluate_reports_its_latest_results_in_either_layout(tmp_path, layout):
    folder = tmp_path / layout
    folder.mkdir(exist_ok=True)
    (folder / "latest_results.json").write_text(json.dumps({"[bbox] test_mAP@50": 0.25, "note": "text"}))
    (folder / "key_metrics_annotations.csv").write_text("")
    metrics, outputs = collect("evaluate", str(tmp_path), load_spec())
    assert metrics == {"[bbox] test_mAP@50": 0.25}  # numbers only
    assert outputs["latest_results.json"] == str(folder / "latest_results.json")
    assert outputs["key_metrics_annotations.csv"] == str(folder / "key_metrics_annotations.csv")


def test_export_passes_on_the_onnx_file_it_wrote_not_another_one(tmp_path):
    (tmp_path / "aaa_first.onnx").write_bytes(b"x")  # listed first: TAO would pick it
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "export_check.json").write_text(json.dumps({"max_abs_diff": 1e-5, "ok": True}))
    metrics, outputs = collect("export", str(tmp_path), load_spec(overrides={"export.onnx_file": str(onnx)}))
    assert outputs["model"] == str(onnx) and metrics == {"max_abs_diff": 1e-5, "check_ok": True}


def test_a_job_that_wrote_nothing_passes_on_nothing(tmp_path):
    for action in ("train", "evaluate", "inference", "quantize"):
        assert collect(action, str(tmp_path), load_spec()) == ({}, {}), action
    _, outputs = collect("export", str(tmp_path), load_spec(overrides={"export.onnx_file": str(tmp_path / "m.onnx")}))
    assert "model" not in outputs
