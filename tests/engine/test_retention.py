"""``train.checkpointer`` (TAO 7.3): the best checkpoints by a validation metric, and with
``replace_periodic`` only the newest periodic checkpoint besides them. Resume stays exact,
the latest link always points at an existing file, and only this run's files are deleted."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from engine_helpers import REFERENCE, checkpoint_files, model_weights, train_in_process, write_spec
from mask_grounding_dino.engine.best_checkpoints import BestCheckpoints, format_name
from mask_grounding_dino.engine.checkpoints import LATEST_NAME
from mask_grounding_dino.engine.history import read_jsonl
from mask_grounding_dino.errors import SpecError
from test_resume import assert_same_weights

#: Epoch-end checkpoints, a validation per epoch ranked by its loss (the untrained tiny model's
#: mAP is 0 at every epoch, a tie; its validation loss differs from epoch to epoch).
RETAIN = {**REFERENCE, "train.checkpoint_interval_unit": "epoch",
          "train.checkpointer": {"enable_topk": True, "replace_periodic": True, "monitor": "val_loss",
                                 "save_top_k": 1}}


def _sha(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_replace_periodic_keeps_the_newest_and_the_best_and_resumes_exactly(assets, reference_run, tmp_path):
    """One epoch, then a rerun with two: the rerun resumes from the first run's checkpoint, ends
    with the weights of the uninterrupted reference run, and deletes that checkpoint (written by
    this run before the restart) once the newer one exists. A file with a checkpoint name that
    this run did not write stays untouched."""
    root = tmp_path / "results"
    folder = train_in_process(assets.spec(root, {**RETAIN, "train.num_epochs": 1}), tmp_path / "one.yaml")
    assert checkpoint_files(folder) == ["model_epoch_000_step_00004.pth"]
    assert os.readlink(folder / LATEST_NAME) == "model_epoch_000_step_00004.pth"
    assert sorted(n for n in os.listdir(folder) if n.startswith("model_best_")) == ["model_best_000.pth"]

    foreign = folder / "model_epoch_000_step_00001.pth"
    shutil.copyfile(reference_run / foreign.name, foreign)
    foreign_sha = _sha(foreign)
    train_in_process(assets.spec(root, {**RETAIN, "train.num_epochs": 2}), tmp_path / "two.yaml")

    assert checkpoint_files(folder) == ["model_epoch_000_step_00001.pth", "model_epoch_001_step_00008.pth"]
    assert _sha(foreign) == foreign_sha
    latest = folder / LATEST_NAME
    assert latest.is_file() and os.readlink(latest) == "model_epoch_001_step_00008.pth"
    assert_same_weights(model_weights(latest), model_weights(reference_run / LATEST_NAME))

    losses = {row["epoch"]: row["val_loss"] for row in read_jsonl(str(folder / "val_metrics.jsonl"))}
    best_epoch = min(losses, key=losses.get)
    assert sorted(n for n in os.listdir(folder) if n.startswith("model_best_")) == [f"model_best_{best_epoch:03d}.pth"]
    best = model_weights(folder / f"model_best_{best_epoch:03d}.pth")
    # the best checkpoint holds the weights validated at the end of that epoch
    assert_same_weights(best, model_weights(reference_run / f"model_epoch_{best_epoch:03d}_step_{4 * best_epoch + 4:05d}.pth"))


def test_additive_best_checkpoints_keep_every_periodic_one(assets, tmp_path):
    """enable_topk alone (TAO's default mode) adds best checkpoints; periodic ones all stay."""
    spec = assets.spec(tmp_path / "results", {**RETAIN, "train.checkpointer.replace_periodic": False,
                                               "train.checkpointer.save_top_k": 2,
                                               "train.checkpointer.filename": "best_{step}",
                                               "train.checkpointer.auto_insert_metric_name": True})
    folder = train_in_process(spec, tmp_path / "spec.yaml")
    assert checkpoint_files(folder) == ["model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth"]
    assert sorted(n for n in os.listdir(folder) if n.startswith("best_")) == ["best_step_4.pth", "best_step_8.pth"]


def test_without_validation_data_best_checkpoints_are_a_spec_error(assets, tmp_path):
    from mask_grounding_dino.actions import train
    from mask_grounding_dino.config import load_spec

    spec = assets.spec(tmp_path / "results", {**RETAIN, "dataset.val_data_sources": {"image_dir": "", "json_file": ""}})
    cfg = load_spec(write_spec(tmp_path / "spec.yaml", spec))
    with pytest.raises(SpecError, match="train.checkpointer.enable_topk: ranks checkpoints by a validation metric"):
        train.run(cfg, progress_bar=False)
    assert not (tmp_path / "results").exists()


def test_names_and_defaults():
    assert format_name("model_best_{epoch:03d}", {"epoch": 7, "step": 800}) == "model_best_007"
    assert format_name("best_{epoch}_{step:05d}", {"epoch": 7, "step": 80}, insert_names=True) == \
        "best_epoch_7_step_00080"
    default = BestCheckpoints("/tmp/x")
    assert (default.monitor, default.mode, default.save_top_k) == ("[bbox] val_mAP@50", "max", 1)
    assert BestCheckpoints("/tmp/x", monitor="val_loss").mode == "min"
    with pytest.raises(SpecError, match=r"train.checkpointer.filename: unknown field \{loss\}"):
        BestCheckpoints("/tmp/x", filename="best_{loss:.2f}")
