"""``mask_grounding_dino train -e spec.yaml``: TAO's training recipe.

spec -> train/val loaders -> model (+ warm start) -> Lightning fit with TAO-named
checkpoints, automatic resume, validation metrics, logs, plots and a status file.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import lightning.pytorch as pl

from ..config import require, spec_to_dict
from ..engine.checkpoints import TaoCheckpoint, find_resume_checkpoint, list_checkpoints
from ..engine.data import eval_loader, train_loader
from ..engine.history import HistoryCallback
from ..engine.module import GroundingModule
from ..engine.progress import ProgressBar, ProgressLines, format_seconds
from ..engine.status import StatusCallback
from ..engine.trainer import build_trainer
from .common import print_table, save_resolved_spec

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


def _results_dir(cfg) -> str:
    path = cfg.train.results_dir or cfg.results_dir
    if not path:
        from ..errors import SpecError
        raise SpecError("results_dir: required for train; set results_dir (or train.results_dir)")
    os.makedirs(path, exist_ok=True)
    return path


def _has_val(cfg) -> bool:
    src = cfg.dataset.val_data_sources
    return bool(src.json_file and src.image_dir)


# Frozen parts (train.freeze) are kept in eval mode on purpose (engine/module.py).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


def run(cfg, *, max_steps: int = -1, progress_bar: bool = True, callbacks: list | None = None) -> int:
    """Train as the spec says. ``callbacks``: extra Lightning callbacks (tools, tests, AutoML)."""
    require(cfg, "dataset.train_data_sources", action="train")
    results_dir = _results_dir(cfg)
    # The spec as run: every later action (and a resume) can rebuild the model from it.
    cfg.train.results_dir = results_dir
    save_resolved_spec(cfg, results_dir, "train")
    pl.seed_everything(int(cfg.train.seed), workers=True, verbose=False)

    eval_info, val = None, None
    module_spec = spec_to_dict(cfg)
    module = GroundingModule(module_spec)
    tp = module.text_processor
    train = train_loader(cfg, tp)
    if _has_val(cfg):
        val, eval_info = eval_loader(cfg, "val", tp)
        module.eval_data = eval_info

    resume = find_resume_checkpoint(results_dir, cfg.train.resume_training_checkpoint_path or None)
    if resume is None and cfg.train.pretrained_model_path:
        from ..model.checkpoint import load_checkpoint
        summary = load_checkpoint(module.model, cfg.train.pretrained_model_path)
        print(summary.report() if hasattr(summary, "report") else str(summary))
    if resume:
        print(f"Resuming from {resume}")

    engine_callbacks = [TaoCheckpoint(results_dir, cfg.train.checkpoint_interval, cfg.train.checkpoint_interval_unit),
                        StatusCallback(results_dir), HistoryCallback(results_dir), *(callbacks or [])]
    # A redrawn bar on a terminal; plain lines every ~30 s in logs (one bar line per step otherwise).
    bar = progress_bar and sys.stderr.isatty()
    if bar:
        engine_callbacks.append(ProgressBar())
    elif progress_bar:
        engine_callbacks.append(ProgressLines())
    trainer = build_trainer(cfg, results_dir, engine_callbacks, max_steps=max_steps, enable_progress_bar=bar)
    start = time.time()
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=resume)
    if trainer.is_global_zero:
        rows = [("results", results_dir), ("epochs", str(trainer.current_epoch)),
                ("steps", str(trainer.global_step)), ("time", format_seconds(time.time() - start))]
        ckpts = list_checkpoints(results_dir)
        if ckpts:
            rows.append(("last checkpoint", ckpts[-1][2]))
        for key, value in module.last_val_metrics.items():
            if "mAP" in key or "mIoU" in key:
                rows.append((key, f"{value:.4f}"))
        rows.append(("plots", os.path.join(results_dir, "plots")))
        print_table("Training finished", rows)
    return 0
