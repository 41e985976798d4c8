"""Training history on disk (``history.jsonl``) and PNG plots of it.

Every ``every_n_steps`` optimiser steps one line with the step, epoch, learning
rate and loss terms is appended; validation metrics come from
``val_metrics.jsonl`` (written by the module). After each validation and at the
end, ``plots/loss.png`` and ``plots/metrics.png`` are redrawn. After a resume the
steps replayed since the last checkpoint appear twice in the file; plots keep
the last value of each step.
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


def plot_history(results_dir: str) -> list[str]:
    """Write the PNG plots; returns their paths (empty when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = os.path.join(results_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    history = {row["step"]: row for row in read_jsonl(os.path.join(results_dir, "history.jsonl"))}
    if history:
        steps = sorted(history)
        keys = sorted({k for row in history.values() for k in row if k.startswith("loss") or k == "train_loss"})
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for key in keys:
            xs = [s for s in steps if key in history[s]]
            ax.plot(xs, [history[s][key] for s in xs], label=key, linewidth=2.0 if key == "train_loss" else 1.0)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("Training losses")
        path = os.path.join(out_dir, "loss.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    vals = {row["epoch"]: row for row in read_jsonl(os.path.join(results_dir, "val_metrics.jsonl"))}
    if vals:
        epochs = sorted(vals)
        names = [k for k in vals[epochs[-1]]["metrics"] if "mAP" in k or "mIoU" in k]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name in names:
            ax.plot(epochs, [vals[e]["metrics"].get(name, float("nan")) for e in epochs], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("Validation metrics")
        path = os.path.join(out_dir, "metrics.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


class HistoryCallback(pl.Callback):
    def __init__(self, results_dir: str, every_n_steps: int = 10):
        self.results_dir = results_dir
        self.every = max(1, int(every_n_steps))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # Every ``every`` steps and at the end of each epoch (so short runs still have a history).
        if not trainer.is_global_zero or (step % self.every and not trainer.is_last_batch):
            return
        row = {"step": step, "epoch": trainer.current_epoch,
               "lr": trainer.optimizers[0].param_groups[0]["lr"]}
        for key, value in trainer.callback_metrics.items():
            if key == "train_loss" or key.startswith("train/"):
                row[key.replace("train/", "")] = float(value)
        with open(os.path.join(self.results_dir, "history.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            plot_history(self.results_dir)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            plot_history(self.results_dir)
