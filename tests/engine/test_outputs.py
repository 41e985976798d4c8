"""What a training run leaves in results_dir besides checkpoints: logs, metrics, plots, status."""

from __future__ import annotations

import csv
import json
import math

from PIL import Image

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.engine.history import read_jsonl


def test_status_file_is_json_lines_from_started_to_success(reference_run):
    lines = (reference_run / "status.json").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == ["STARTED", "RUNNING", "RUNNING", "SUCCESS"]
    for record in records:
        assert {"date", "time", "status", "verbosity", "message"} <= record.keys()
    running = records[1:3]
    # TAO's fields: 0-based epoch index, max_epoch = the last index; messages count from 1
    assert [(r["epoch"], r["global_step"], r["max_epoch"]) for r in running] == [(0, 4, 1), (1, 8, 1)]
    assert [r["message"] for r in running] == ["Epoch 1/2 finished", "Epoch 2/2 finished"]
    assert "[bbox] val_mAP@50" in running[0]["kpi"] and "[segm] val_mAP@50" in running[0]["kpi"]
    assert math.isfinite(running[0]["graphical"]["train_loss"])
    assert running[0]["time_per_epoch"] >= 0 and running[1]["eta"] == 0


def test_history_has_the_loss_terms_at_each_epoch_end(reference_run):
    rows = read_jsonl(str(reference_run / "history.jsonl"))
    assert [(r["step"], r["epoch"]) for r in rows] == [(4, 0), (8, 1)]
    for row in rows:
        assert {"lr", "train_loss", "loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"} <= row.keys()
        assert all(math.isfinite(v) for v in row.values())


def test_validation_metrics_per_epoch(reference_run):
    rows = read_jsonl(str(reference_run / "val_metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [0, 1]
    for row in rows:
        assert {"[bbox] val_mAP@50-95", "[bbox] val_mAP@50", "[segm] val_mAP@50"} <= row["metrics"].keys()
        assert math.isfinite(row["val_loss"])
    for epoch in (0, 1):
        detail = json.loads((reference_run / f"val_metrics_epoch_{epoch:03d}.json").read_text())
        assert detail["epoch"] == epoch and detail["metrics"] == rows[epoch]["metrics"] and detail["details"]


def test_plots_are_images(reference_run):
    for name in ("loss.png", "metrics.png"):
        with Image.open(reference_run / "plots" / name) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_csv_and_tensorboard_logs(reference_run):
    with open(reference_run / "csv_logs" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    val_rows = [r for r in rows if r.get("val_loss")]
    assert [int(r["epoch"]) for r in val_rows] == [0, 1]
    assert all(math.isfinite(float(r["[bbox] val_mAP@50"])) for r in val_rows)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((reference_run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(reference_run / "tensorboard"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert "val_loss" in tags and "[bbox] val_mAP@50" in tags
    assert len(accumulator.Scalars("val_loss")) == 2


def test_the_spec_as_run_is_saved(reference_run):
    spec = load_spec(str(reference_run / "train_spec.yaml"))
    # TAO's layout: training writes to <results_dir>/train, and the spec as run says so
    assert reference_run.name == "train"
    assert spec.train.results_dir == str(reference_run) and spec.results_dir == str(reference_run.parent)
    assert (spec.model.hidden_dim, spec.train.checkpoint_interval_unit, spec.train.optim.lr_steps) == (32, "step", [1])
