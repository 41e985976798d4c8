"""``mask_grounding_dino train -e spec.yaml``: TAO's training recipe.

spec -> train/val loaders -> model (+ warm start) -> Lightning fit with TAO-named
checkpoints, automatic resume, validation metrics, logs, plots and a status file.
"""

from __future__ import annotations

import os
import sys
import time

import lightning.pytorch as pl

from ..config import require, spec_to_dict
from ..engine.checkpoints import TaoCheckpoint, find_resume_checkpoint, list_checkpoints
from ..engine.data import eval_loader, train_loader
from ..engine.history import HistoryCallback
from ..engine.module import GroundingModule
from ..engine.progress import ProgressBar, ProgressLines, format_seconds
from ..engine.status import StatusCallback
from ..engine.trainer import build_trainer, quiet_lightning
from ..utils.cpu import flushed_denormals
from .common import print_table, save_resolved_spec


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
    resume = find_resume_checkpoint(results_dir, cfg.train.resume_training_checkpoint_path or None)
    pretrained = cfg.train.pretrained_model_path if resume is None else None
    # A checkpoint provides the text encoder's weights: build its architecture only (no download).
    module = GroundingModule(module_spec, load_text_weights=not (resume or pretrained))
    if pretrained:
        from ..model.checkpoint import load_checkpoint
        from ..model.text_encoder import complete_text_weights
        summary = load_checkpoint(module.model, pretrained)
        print(summary.report() if hasattr(summary, "report") else str(summary))
        complete_text_weights(module.model, summary, cfg.model.text_encoder_type)
    tp = module.text_processor
    train = train_loader(cfg, tp)
    if _has_val(cfg):
        val, eval_info = eval_loader(cfg, "val", tp)
        module.eval_data = eval_info

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
    start = time.time()
    # Both settings hold for this training only: the caller's process is left as it was.
    with quiet_lightning(), flushed_denormals():
        trainer = build_trainer(cfg, results_dir, engine_callbacks, max_steps=max_steps, enable_progress_bar=bar)
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
