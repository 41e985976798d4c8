"""Training keys do what TAO's documentation says: precision, freeze, learning-rate groups and
schedules, gradient clipping, intervals, dry runs, wandb without credentials, detection-only."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch

from engine_helpers import RunRecorder, checkpoint_files, model_weights, read_record, train_in_process, write_spec
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.checkpoints import LATEST_NAME
from mask_grounding_dino.engine.optim import build_optimizer, build_scheduler
from mask_grounding_dino.engine.trainer import build_trainer, wandb_arguments, wandb_logger

NO_VAL = {"dataset.val_data_sources": {"image_dir": "", "json_file": "", "data_type": "OD"}}


def _run(assets, tmp_path, overrides: dict, *, max_steps: int = -1, keep_initial: bool = False):
    """Train in this process with a recorder; returns (training folder, record)."""
    results = train_in_process(assets.spec(tmp_path / "results", overrides), tmp_path / "spec.yaml",
                               callbacks=[RunRecorder(tmp_path / "record", keep_initial=keep_initial)],
                               max_steps=max_steps)
    return results, read_record(tmp_path / "record")


# -- one epoch with frozen backbone, own learning rates, strong clipping, checkpoints every 3 steps ---------
TUNED = {**NO_VAL, "train.num_epochs": 1, "train.freeze": ["backbone.0"], "train.clip_grad_norm": 0.05,
         "train.optim.lr": 1e-4, "train.optim.lr_backbone": 3e-5, "train.optim.lr_linear_proj_mult": 0.5,
         "train.checkpoint_interval_unit": "step", "train.checkpoint_interval": 3}


@pytest.fixture(scope="module")
def tuned_run(assets, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tuned")
    return _run(assets, tmp, TUNED, keep_initial=True) + (tmp / "record",)


def test_frozen_parameters_do_not_change(tuned_run):
    results, _, record_dir = tuned_run
    initial = torch.load(record_dir / "initial.pt", map_location="cpu", weights_only=True)
    final = {k[len("model."):]: v for k, v in model_weights(results / LATEST_NAME).items()}
    # parameters and BatchNorm statistics alike: a frozen part does not change at all
    frozen = [k for k in initial if k.startswith("backbone.0.")]
    assert any("running_mean" in k for k in frozen)
    assert frozen and all(torch.equal(initial[k], final[k]) for k in frozen)
    trained = [k for k in initial if k.startswith("transformer.") and initial[k].is_floating_point()]
    assert any(not torch.equal(initial[k], final[k]) for k in trained)


def test_everything_trains_in_train_mode_but_frozen_parts(tuned_run):
    """The text encoder comes from from_pretrained in eval mode; training switches the trainable
    model to train mode (dropout on, as in Grounding DINO). Modules under train.freeze (here
    backbone.0) stay in eval mode: BatchNorm statistics fixed, dropout off."""
    _, record, _ = tuned_run
    for batch in record["batches"]:
        assert any(".bn" in n for n in batch["eval_modules"]), batch["eval_modules"]
        assert all(n == "model.backbone.0" or n.startswith("model.backbone.0.")
                   for n in batch["eval_modules"]), batch["eval_modules"]


def test_training_after_validation_is_in_train_mode(reference_run):
    record = read_record(reference_run.parents[1] / "record")
    epoch1 = [b for b in record["batches"] if b["epoch"] == 1]
    assert epoch1 and all(b["eval_modules"] == [] for b in record["batches"])


def test_param_groups_get_their_learning_rates(tuned_run):
    _, record, _ = tuned_run
    first = record["batches"][0]
    # main: lr; backbone (model.backbone_names: backbone.0, bert): lr_backbone; projections: lr * mult
    assert first["lr"] == pytest.approx({"main": 1e-4, "backbone": 3e-5, "linear_proj": 5e-5}, rel=1e-12)
    assert all(size > 0 for size in first["group_sizes"].values())


def test_param_group_membership(assets, tmp_path):
    """Which parameters land in which group (TAO's substring match), frozen ones in none."""
    from mask_grounding_dino.engine.module import GroundingModule

    cfg = load_spec(write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "r", TUNED)))
    model = GroundingModule(spec_to_dict(cfg)).model
    optimizer, groups = build_optimizer(model, cfg.model, cfg.train.optim)
    names = {id(p): n for n, p in model.named_parameters()}
    members = {g["name"]: [names[id(p)] for p in g["params"]] for g in optimizer.param_groups}
    assert members["backbone"] and all(n.startswith("bert.") for n in members["backbone"])  # backbone.0 is frozen
    assert members["linear_proj"] and all("sampling_offsets" in n or "reference_points" in n
                                          for n in members["linear_proj"])
    assert not any(n.startswith("backbone.0.") for group in members.values() for n in group)
    assert not any("bert" in n or "sampling_offsets" in n for n in members["main"])
    assert groups.counts["backbone"] == sum(p.numel() for n, p in model.named_parameters()
                                            if n.startswith("bert.") and p.requires_grad)


def test_gradients_are_clipped_to_clip_grad_norm(tuned_run):
    _, record, _ = tuned_run
    norms = record["grad_norms"]
    assert len(norms) == 4
    for step in norms:
        assert step["before_clip"] > 0.05  # clipping had work to do (losses are large at the start)
        # clip_grad_norm_ scales by max_norm / (norm + 1e-6); float32 rounding stays far below 1e-4
        assert step["after_clip"] <= 0.05 * (1 + 1e-4)


def test_step_interval_saves_every_n_steps_and_the_last_step(tuned_run):
    results, _, _ = tuned_run
    assert checkpoint_files(results) == ["model_epoch_000_step_00003.pth", "model_epoch_000_step_00004.pth"]


# -- two epochs, checkpoints every 2 epochs, validation every 2 epochs, StepLR halving every epoch --------
@pytest.fixture(scope="module")
def epoch_run(assets, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("epochs")
    return _run(assets, tmp, {"train.checkpoint_interval_unit": "epoch", "train.checkpoint_interval": 2,
                              "train.validation_interval": 2, "train.optim.lr_scheduler": "StepLR",
                              "train.optim.lr_step_size": 1, "train.optim.lr_decay": 0.5})


def test_epoch_interval_names(epoch_run):
    results, _ = epoch_run
    assert checkpoint_files(results) == ["model_epoch_001_step_00008.pth"]


def test_validation_interval(epoch_run):
    results, _ = epoch_run
    lines = (results / "val_metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"epoch": 1' in lines[0]


def test_steplr_in_a_run(epoch_run):
    _, record = epoch_run
    lr_by_epoch = {b["epoch"]: b["lr"]["main"] for b in record["batches"]}
    assert lr_by_epoch == pytest.approx({0: 2e-4, 1: 1e-4}, rel=1e-12)


@pytest.mark.parametrize("kind,settings,expected", [
    ("MultiStep", {"lr_steps": [2, 4], "lr_decay": 0.1}, [1, 1, 0.1, 0.1, 0.01, 0.01]),
    ("StepLR", {"lr_step_size": 3, "lr_decay": 0.5}, [1, 1, 1, 0.5, 0.5, 0.5]),
])
def test_schedules_per_epoch(kind, settings, expected):
    optim_cfg = types.SimpleNamespace(**{"lr_scheduler": kind, "lr_steps": [10], "lr_step_size": 10,
                                         "lr_decay": 0.1, **settings})
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, optim_cfg)
    seen = []
    for _ in expected:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(expected, rel=1e-9)


# -- precision -----------------------------------------------------------------------------------------
def _cfg(assets, tmp_path, overrides):
    return load_spec(write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "r", overrides)))


@pytest.mark.parametrize("precision,expected,notice", [("fp32", "32-true", False), ("bf16", "bf16-mixed", False),
                                                       ("fp16", "bf16-mixed", True)])
def test_precision_on_cpu(assets, tmp_path, capsys, precision, expected, notice):
    trainer = build_trainer(_cfg(assets, tmp_path, {"train.precision": precision}), str(tmp_path), [],
                            enable_progress_bar=False)
    assert trainer.precision == expected
    out = capsys.readouterr().out
    assert ("fp16 mixed precision needs a GPU; using bf16" in out) == notice


def test_bf16_training_runs_on_cpu(assets, tmp_path):
    results, record = _run(assets, tmp_path, {**NO_VAL, "train.precision": "bf16", "train.num_epochs": 1},
                           max_steps=2)
    assert record["precision"] == "bf16-mixed" and record["global_step"] == 2
    assert math.isfinite(record["metrics"]["train_loss"])
    assert all(torch.isfinite(v).all() for v in model_weights(results / LATEST_NAME).values()
               if v.is_floating_point())


# -- detection only, wandb without credentials, dry run ------------------------------------------------
def test_detection_only_training_with_wandb_enabled_but_unavailable(assets, tmp_path, capsys):
    """loss_types without masks trains boxes and labels only; wandb.enable (TAO's default) without
    wandb (or without credentials) prints one notice line and training goes on."""
    results, record = _run(assets, tmp_path, {**NO_VAL, "train.num_epochs": 1, "model.loss_types": ["labels", "boxes"],
                                              "wandb.enable": True}, max_steps=2)
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("notice: wandb.enable is true")]) == 1
    assert record["global_step"] == 2
    assert {"train/loss_ce", "train/loss_bbox", "train/loss_giou"} <= record["metrics"].keys()
    assert not any("mask" in k or "dice" in k for k in record["metrics"])
    assert checkpoint_files(results) == ["model_epoch_000_step_00002.pth"]


def test_wandb_without_credentials_is_a_notice(assets, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))  # installed, but never logged in
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_logger(_cfg(assets, tmp_path, {"wandb.enable": True}), str(tmp_path)) is None
    assert capsys.readouterr().out.count("no wandb credentials were found") == 1


def test_every_wandb_key_reaches_the_logger():
    """The wandb section's keys become WandbLogger arguments; the ones Lightning does not know
    (reinit, sync_tensorboard, save_code) travel on to wandb.init."""
    cfg = load_spec(overrides={"wandb.project": "p", "wandb.entity": "e", "wandb.group": "g", "wandb.name": "n",
                               "wandb.tags": ["a"], "wandb.run_id": "r1", "wandb.reinit": True,
                               "wandb.sync_tensorboard": True, "wandb.save_code": True})
    assert wandb_arguments(cfg.wandb, "out") == dict(
        project="p", entity="e", group="g", name="n", tags=["a"], id="r1", save_dir="out", resume="allow",
        reinit=True, sync_tensorboard=True, save_code=True)
    assert {k: v for k, v in wandb_arguments(load_spec().wandb, "out").items()
            if k in ("reinit", "sync_tensorboard", "save_code")} == dict(reinit=False, sync_tensorboard=False,
                                                                          save_code=False)


def test_dry_run_trains_one_step_and_leaves_no_checkpoint(assets, tmp_path):
    results, record = _run(assets, tmp_path, {"train.is_dry_run": True})
    assert record["global_step"] == 1
    assert checkpoint_files(results) == [] and not (results / LATEST_NAME).exists()


def test_freeze_typo_is_a_spec_error_before_training(assets, tmp_path, capsys):
    from mask_grounding_dino.cli import main

    spec = write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "r", {"train.freeze": ["backbone.O"]}))
    assert main(["train", "-e", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train.freeze: ['backbone.O'] match no parameters")
    assert not (tmp_path / "r" / "status.json").exists()
