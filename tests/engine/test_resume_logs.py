"""A resumed run keeps every log of the run it continues, and the history records the learning
rate each step used (warm-up included)."""

from __future__ import annotations

import csv
import json

import pytest

from engine_helpers import REFERENCE, train_in_process
from mask_grounding_dino.engine.history import read_jsonl

NO_VAL = {"dataset.val_data_sources": {"image_dir": "", "json_file": "", "data_type": "OD"}}


@pytest.fixture(scope="module")
def resumed(assets, tmp_path_factory):
    """One epoch, then the same folder rerun with two: the second process resumes at step 4."""
    tmp = tmp_path_factory.mktemp("resumed")
    epochs = {**REFERENCE, "train.checkpoint_interval_unit": "epoch"}
    folder = train_in_process(assets.spec(tmp / "results", {**epochs, "train.num_epochs": 1}), tmp / "one.yaml")
    first = {name: (folder / name).read_text() for name in ("status.json", "history.jsonl", "val_metrics.jsonl",
                                                             "csv_logs/metrics.csv")}
    train_in_process(assets.spec(tmp / "results", {**epochs, "train.num_epochs": 2}), tmp / "two.yaml")
    return folder, first


def test_csv_log_keeps_the_first_run_rows(resumed):
    """Lightning's CSVLogger deleted metrics.csv when the second process started."""
    folder, first = resumed
    text = (folder / "csv_logs" / "metrics.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [int(r["epoch"]) for r in rows if r.get("val_loss")] == [0, 1]
    first_rows = list(csv.DictReader(first["csv_logs/metrics.csv"].splitlines()))
    assert rows[:len(first_rows)] == first_rows  # earlier rows unchanged, in order


def test_jsonl_logs_and_status_are_continued(resumed):
    folder, first = resumed
    for name in ("status.json", "history.jsonl", "val_metrics.jsonl"):
        assert (folder / name).read_text().startswith(first[name]), name
    statuses = [json.loads(line) for line in (folder / "status.json").read_text().splitlines()]
    assert [s["status"] for s in statuses] == ["STARTED", "RUNNING", "SUCCESS", "STARTED", "RUNNING", "SUCCESS"]
    assert statuses[3]["message"] == "Training resumed at step 4"
    assert [r["step"] for r in read_jsonl(str(folder / "history.jsonl"))] == [4, 8]


def test_tensorboard_continues_in_the_same_folder(resumed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, _ = resumed
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per process
    accumulator = EventAccumulator(str(folder / "tensorboard"))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("val_loss")] == [3, 7]


def test_history_records_the_learning_rate_the_step_used(assets, tmp_path):
    """Warm-up over 6 steps, then x0.1 after epoch 0 (4 steps per epoch). Step s (1-based) used
    lr * min(1, s / 6) * 0.1 ** (epochs completed before it); the history printed 5e-4 during
    the quickstart preset's warm-up before."""
    lr = 4e-4
    spec = assets.spec(tmp_path / "results", {**NO_VAL, "train.optim.lr": lr, "train.optim.warmup_steps": 6,
                                               "train.optim.lr_steps": [1], "train.num_epochs": 2})
    folder = train_in_process(spec, tmp_path / "spec.yaml")
    rows = read_jsonl(str(folder / "history.jsonl"))
    assert [r["step"] for r in rows] == [4, 8]  # every 10 steps and at each epoch end
    for row in rows:
        step, epoch = row["step"], row["epoch"]
        expected = lr * min(1.0, step / 6) * 0.1 ** epoch
        # rel 1e-6: the same Python floats multiplied in another order differ in the last bits only
        assert row["lr"] == pytest.approx(expected, rel=1e-6), row
    assert rows[0]["lr"] == pytest.approx(lr * 4 / 6, rel=1e-6)  # mid warm-up: not the scheduled lr
