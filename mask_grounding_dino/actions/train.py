"""``mask_grounding_dino train -e spec.yaml``: TAO's training recipe.

spec -> results folder check -> train/val loaders -> model (+ warm start) -> Lightning fit with
TAO-named checkpoints, automatic resume, validation metrics, logs, plots and a status file.

Training writes to ``train.results_dir``, else ``<results_dir>/train``. Nothing in that folder
is written before the run is known to fit what is there (``engine/run_folder.py``): a
conflicting folder stops the run with one line and stays byte-identical.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import dataclass

import lightning.pytorch as pl

from ..config import require, spec_to_dict
from ..config.validate import region_head_without_loss
from ..errors import SpecError
from ..engine.best_checkpoints import BestCheckpoints
from ..engine.checkpoints import TaoCheckpoint, list_checkpoints
from ..engine.data import eval_loader, train_loader
from ..engine.history import HistoryCallback
from ..engine.module import GroundingModule
from ..engine.progress import ProgressBar, ProgressLines, format_seconds
from ..engine.run_folder import check_model_fits, plan_training
from ..engine.status import StatusCallback
from ..engine.trainer import build_trainer, quiet_lightning
from ..utils.cpu import flushed_denormals
from .common import print_table, save_resolved_spec
from .folders import action_folder
from ..utils.log import get_logger

log = get_logger(__name__)

#: ``mask_grounding_dino train --help`` (read from this file by the CLI without importing it).
HELP = {
    "summary": "train on ODVG data (resumes when rerun)",
    "description": "Train on dataset.train_data_sources (ODVG + label map; several sources mix), validating on "
                   "dataset.val_data_sources. Checkpoints are written atomically; rerunning the same command "
                   "resumes.",
    "keys": [
        ("dataset.train_data_sources.0.image_dir", "the images: a folder, an images.tar.gz or an s3:// URL "
                                                   "(more sources: .1., .2., ...)"),
        ("dataset.train_data_sources.0.json_file", "the annotations: ODVG jsonl"),
        ("dataset.train_data_sources.0.label_map", "label id -> class name json (detection records)"),
        ("dataset.val_data_sources.json_file", "validation annotations (COCO json with data_type=OD), with "
                                               "dataset.val_data_sources.image_dir"),
        ("results_dir", "the experiment's folder: train writes in <results_dir>/train, e.g. "
                        "runs/exp1/train/mask_gdino_model_latest.pth"),
        ("train.results_dir", "train's own folder instead (checkpoints, logs, plots, status.json)"),
        ("train.num_epochs", "epochs to train (TAO: 10)"),
        ("train.pretrained_model_path", "warm start: any checkpoint, a Hugging Face folder or hub id "
                                        "(IDEA-Research/grounding-dino-tiny)"),
    ],
    "examples": [
        "mask_grounding_dino train -e spec.yaml results_dir=runs/exp1 train.num_epochs=12",
        "mask_grounding_dino train -e spec.yaml "
        "dataset.train_data_sources.0.image_dir=data/train/images.tar.gz "
        "dataset.train_data_sources.0.json_file=data/train/annotations_odvg.jsonl "
        "dataset.train_data_sources.0.label_map=data/train/annotations_odvg_labelmap.json "
        "dataset.val_data_sources.image_dir=data/val/images.tar.gz "
        "dataset.val_data_sources.json_file=data/val/annotations.json dataset.val_data_sources.data_type=OD "
        "results_dir=runs/exp1 train.num_epochs=12 "
        "train.pretrained_model_path=IDEA-Research/grounding-dino-tiny",
    ],
}


@dataclass
class TrainOutcome:
    """``trained``: False when the folder held this run finished already (nothing was written)."""

    results_dir: str
    trained: bool
    checkpoint: str | None
    seconds: float = 0.0
    resumed_from: str | None = None
    start_step: int = 0
    global_step: int = 0


def _has_val(cfg) -> bool:
    src = cfg.dataset.val_data_sources
    return bool(src.json_file and src.image_dir)


def _checkpoint_callbacks(cfg, results_dir: str, has_val: bool) -> list[pl.Callback]:
    tc, ck = cfg.train, cfg.train.checkpointer
    callbacks = [TaoCheckpoint(results_dir, tc.checkpoint_interval, tc.checkpoint_interval_unit,
                               keep_newest_only=bool(ck.enable_topk and ck.replace_periodic))]
    if ck.enable_topk:
        if not has_val:
            raise SpecError("train.checkpointer.enable_topk: ranks checkpoints by a validation metric, but "
                            "dataset.val_data_sources is not set; give validation data or set enable_topk false")
        dirpath = os.path.abspath(ck.dirpath) if ck.dirpath else results_dir
        callbacks.append(BestCheckpoints(dirpath, ck.monitor, ck.mode, ck.save_top_k, ck.filename,
                                         ck.auto_insert_metric_name))
    return callbacks


def untrained_region_head(cfg) -> str | None:
    """The warning for a region head that is built but gets no loss while validation filters by it.

    TAO's train template sets ``num_region_queries: 100`` and ``loss_types: [labels, boxes,
    masks]``: the ReLA head then never trains, yet every validation pass drops the detections
    whose masks lie outside its (random) union mask, so mAP can read 0 for a model that has
    learned. Measured on a real photo (bench/realphoto_steps.py, 15 runs): the best bbox mAP@50
    of 200 steps was 0.00-0.83 without the head's loss (one run 0.00 throughout), 0.77-0.87 with it.
    """
    model = cfg.model
    if region_head_without_loss(model) and float(cfg.evaluate.ioi_threshold) > 0:
        return (f"model.num_region_queries is {model.num_region_queries} but model.loss_types has no 'rela': the region "
                f"head gets no loss, yet validation drops every detection outside its union mask "
                f"(evaluate.ioi_threshold {cfg.evaluate.ioi_threshold}), so mAP may read near 0 for a model that "
                f"has learned; add rela to model.loss_types, or set model.num_region_queries 0 for detection only")
    return None


def run(cfg, *, max_steps: int = -1, progress_bar: bool = True, callbacks: list | None = None) -> int:
    """Train as the spec says. ``callbacks``: extra Lightning callbacks (tools, tests, AutoML)."""
    fit(cfg, max_steps=max_steps, progress_bar=progress_bar, callbacks=callbacks)
    return 0


def fit(cfg, *, max_steps: int = -1, progress_bar: bool = True, callbacks: list | None = None) -> TrainOutcome:
    """:func:`run`, returning what happened. The caller's ``cfg`` is left as it was."""
    cfg = copy.deepcopy(cfg)  # the resolved folder goes into this run's spec, not the caller's
    require(cfg, "dataset.train_data_sources", action="train")
    results_dir = action_folder(cfg, "train")
    cfg.train.results_dir = results_dir  # the spec as run: later actions and a resume rebuild from it
    plan = plan_training(cfg, results_dir)  # reads only; a conflict stops here
    log.info(plan.first_line())
    if plan.finished:
        return TrainOutcome(results_dir, False, plan.resume, resumed_from=plan.resume,
                            start_step=plan.position.step, global_step=plan.position.step)
    has_val = _has_val(cfg)
    if has_val and (line := untrained_region_head(cfg)):
        log.warning(line)
    engine_callbacks = [*_checkpoint_callbacks(cfg, results_dir, has_val), StatusCallback(results_dir),
                        HistoryCallback(results_dir), *(callbacks or [])]
    pl.seed_everything(int(cfg.train.seed), workers=True, verbose=False)

    resume = plan.resume
    pretrained = cfg.train.pretrained_model_path if resume is None else None
    # A checkpoint provides the text encoder's weights: build its architecture only (no download).
    module = GroundingModule(spec_to_dict(cfg), load_text_weights=not (resume or pretrained))
    if pretrained:
        from ..model.checkpoint import load_checkpoint
        from ..model.text_encoder import complete_text_weights
        summary = load_checkpoint(module.model, pretrained)
        log.info(summary.report() if hasattr(summary, "report") else str(summary))
        complete_text_weights(module.model, summary, cfg.model.text_encoder_type)
    tp = module.text_processor
    train = train_loader(cfg, tp)
    val = None
    if has_val:
        val, module.eval_data = eval_loader(cfg, "val", tp)
    check_model_fits(plan, module.state_dict())
    # Everything the run needs is in place: only now is the results folder written to.
    os.makedirs(results_dir, exist_ok=True)
    save_resolved_spec(cfg, results_dir, "train")

    # A redrawn bar on a terminal; plain lines every ~30 s in logs (one bar line per step otherwise).
    bar = progress_bar and sys.stderr.isatty()
    if bar:
        engine_callbacks.append(ProgressBar())
    elif progress_bar:
        engine_callbacks.append(ProgressLines())
    start = time.time()
    # Both settings hold for this training only: the caller's process is left as it was.
    with quiet_lightning(), flushed_denormals():
        trainer = build_trainer(cfg, results_dir, engine_callbacks, max_steps=max_steps, enable_progress_bar=bar)
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=resume)
    seconds = time.time() - start
    ckpts = list_checkpoints(results_dir)
    outcome = TrainOutcome(results_dir, True, ckpts[-1][2] if ckpts else None, seconds, resume,
                           plan.position.step if plan.position else 0, trainer.global_step)
    if trainer.is_global_zero:
        _print_summary(trainer, module, outcome)
    return outcome


def _print_summary(trainer, module, outcome: TrainOutcome) -> None:
    rows = [("results", outcome.results_dir), ("epochs", f"{trainer.current_epoch}/{trainer.max_epochs}"),
            ("steps", str(trainer.global_step)), ("time", format_seconds(outcome.seconds))]
    if outcome.checkpoint:
        rows.append(("last checkpoint", outcome.checkpoint))
    for key, value in module.last_val_metrics.items():
        if ("mAP" in key or "mIoU" in key) and value >= 0:  # COCO's -1: no object of that size
            rows.append((key, f"{value:.4f}"))
    rows.append(("plots", os.path.join(outcome.results_dir, "plots")))
    print_table("Training finished", rows)
