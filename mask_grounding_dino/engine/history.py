"""Training history on disk (``history.jsonl``), redrawn as PNG plots (``engine/plots.py``).

Every ``every_n_steps`` optimiser steps one line with the step (steps done), epoch (TAO's
0-based index), the learning rate that step used (warm-up included) and the loss terms is
appended; validation metrics come from ``val_metrics.jsonl`` (written by the module). After
each validation and at the end, ``plots/loss.png`` and ``plots/metrics.png`` are redrawn.
A resumed run appends to the same file; the steps replayed since the last checkpoint then
appear twice, and plots keep the last value of each step.
"""

from __future__ import annotations

import json
import os

import lightning.pytorch as pl


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: skip it
    return rows


class HistoryCallback(pl.Callback):
    def __init__(self, results_dir: str, every_n_steps: int = 10):
        self.results_dir = results_dir
        self.every = max(1, int(every_n_steps))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # Every ``every`` steps and at the end of each epoch (so short runs still have a history).
        if not trainer.is_global_zero or (step % self.every and not trainer.is_last_batch):
            return
        lr = getattr(pl_module, "applied_lr", None)
        row = {"step": step, "epoch": trainer.current_epoch,
               "lr": lr if lr is not None else trainer.optimizers[0].param_groups[0]["lr"]}
        for key, value in trainer.callback_metrics.items():
            if key == "train_loss" or key.startswith("train/"):
                row[key.replace("train/", "")] = float(value)
        with open(os.path.join(self.results_dir, "history.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            _plot(self.results_dir)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            _plot(self.results_dir)


def _plot(results_dir: str) -> None:
    from .plots import plot_history  # matplotlib is imported only when a plot is drawn

    plot_history(results_dir)
