"""The model a train job passes on: the best validation's checkpoint, not TAO's "latest"."""

from __future__ import annotations

import json
import os

from mask_grounding_dino.jobs.artifacts import MONITOR, best_checkpoint, train_folder, validation_records


def _run(folder, epochs: dict[int, float | None], steps_per_epoch: int = 4, keep=None, status_only=False):
    """A train folder: a checkpoint per epoch end (``keep``: only those epochs) and one validation
    record per epoch with ``MONITOR`` = the given value (None: not recorded)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for epoch, value in epochs.items():
        step = (epoch + 1) * steps_per_epoch
        if keep is None or epoch in keep:
            (folder / f"model_epoch_{epoch:03d}_step_{step:05d}.pth").write_bytes(b"")
        metrics = {"[segm] val_mAP@50": 0.9} if value is None else {MONITOR: value, "[segm] val_mAP@50": 0.1}
        records.append({"epoch": epoch, "global_step": step, "metrics": metrics})
    if status_only:
        lines = [{"status": "RUNNING", "epoch": r["epoch"], "global_step": r["global_step"], "kpi": r["metrics"]}
                 for r in records]
        (folder / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    else:
        (folder / "val_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_the_best_epoch_wins_over_the_latest(tmp_path):
    folder = _run(tmp_path, {0: 0.2, 1: 0.6, 2: 0.4})
    best = best_checkpoint(str(folder))
    assert os.path.basename(best.path) == "model_epoch_001_step_00008.pth"
    assert (best.epoch, best.step, best.value) == (1, 8, 0.6)


def test_a_tie_goes_to_the_later_epoch(tmp_path):
    best = best_checkpoint(str(_run(tmp_path, {0: 0.5, 1: 0.5, 2: 0.1})))
    assert os.path.basename(best.path) == "model_epoch_001_step_00008.pth"


def test_without_validation_the_latest_checkpoint(tmp_path):
    best = best_checkpoint(str(_run(tmp_path, {0: None, 1: None})))
    assert os.path.basename(best.path) == "model_epoch_001_step_00008.pth"
    assert best.value is None and "no validation" in best.note


def test_a_best_epoch_without_its_checkpoint_falls_back_to_the_latest(tmp_path):
    best = best_checkpoint(str(_run(tmp_path, {0: 0.9, 1: 0.1}, keep={1})))
    assert os.path.basename(best.path) == "model_epoch_001_step_00008.pth"
    assert "not kept" in best.note


def test_the_status_file_kpi_when_val_metrics_is_missing(tmp_path):
    best = best_checkpoint(str(_run(tmp_path, {0: 0.7, 1: 0.3}, status_only=True)))
    assert os.path.basename(best.path) == "model_epoch_000_step_00004.pth"


def test_a_resumed_epoch_keeps_its_last_record_and_cut_lines_are_skipped(tmp_path):
    folder = _run(tmp_path, {0: 0.8, 1: 0.5})
    with open(folder / "val_metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"epoch": 0, "global_step": 4, "metrics": {MONITOR: 0.1}}) + "\n")
        handle.write('{"epoch": 1, "global_step": 8, "metr')  # killed mid-write
    assert [r["metrics"][MONITOR] for r in validation_records(str(folder))] == [0.1, 0.5]
    assert os.path.basename(best_checkpoint(str(folder)).path) == "model_epoch_001_step_00008.pth"


def test_train_folder_prefers_the_action_subfolder(tmp_path):
    assert train_folder(str(tmp_path)) is None
    _run(tmp_path, {0: 0.1})
    assert train_folder(str(tmp_path)) == str(tmp_path)
    _run(tmp_path / "train", {0: 0.1})
    assert train_folder(str(tmp_path)) == str(tmp_path / "train")
