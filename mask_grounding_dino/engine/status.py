"""A machine-readable run log: ``status.json`` with one JSON object per line.

Tools (job runners, dashboards, AutoML drivers) follow it like TAO's status
file: every line has ``date``, ``time``, ``status`` (STARTED, RUNNING, SUCCESS,
FAILURE), ``verbosity`` and ``message``, plus progress (``epoch``,
``max_epoch``, ``global_step``, ``eta``) and ``kpi`` / ``graphical`` metrics
where available. As in TAO, ``epoch`` is the 0-based epoch index and ``max_epoch``
the last index (``num_epochs - 1``); messages count from 1 like the progress lines
(``Epoch 3/8 finished`` has ``epoch`` 2). Lines are appended (a resumed run continues
the file) and flushed immediately, so a follower never reads half a line (each write
is a single ``write`` of a full line).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from typing import Any

import lightning.pytorch as pl


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


class StatusLogger:
    """Appends status lines to ``<results_dir>/status.json`` (rank 0 only)."""

    def __init__(self, results_dir: str, filename: str = "status.json", enabled: bool = True):
        self.path = os.path.join(results_dir, filename)
        self.enabled = enabled
        if enabled:
            os.makedirs(results_dir, exist_ok=True)

    def write(self, status: str, message: str = "", verbosity: str = "INFO", **fields: Any) -> None:
        if not self.enabled:
            return
        now = datetime.datetime.now()
        record = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M:%S"),
                  "status": status, "verbosity": verbosity, "message": message}
        for key, value in fields.items():
            if isinstance(value, dict):
                record[key] = {k: _clean(v) for k, v in value.items()}
            else:
                record[key] = _clean(value)
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


def _last_index(trainer) -> int | None:
    return trainer.max_epochs - 1 if trainer.max_epochs and trainer.max_epochs > 0 else None


class StatusCallback(pl.Callback):
    """Writes STARTED / RUNNING (per epoch, with KPIs) / SUCCESS / FAILURE lines."""

    def __init__(self, results_dir: str):
        self.results_dir = results_dir
        self.logger: StatusLogger | None = None
        self._start = 0.0
        self._epoch_start = 0.0

    def setup(self, trainer, pl_module, stage) -> None:
        self.logger = StatusLogger(self.results_dir, enabled=trainer.is_global_zero)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._epoch_start = time.time()  # a mid-epoch resume gets no on_train_epoch_start
        message = f"Training resumed at step {trainer.global_step}" if trainer.global_step else "Training started"
        self.logger.write("STARTED", message, max_epoch=_last_index(trainer),
                          global_step=trainer.global_step, epoch=trainer.current_epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        elapsed = time.time() - self._epoch_start
        remaining = max(0, (trainer.max_epochs or 0) - trainer.current_epoch - 1)
        metrics = {k: v for k, v in trainer.callback_metrics.items()}
        kpi = {k: v for k, v in metrics.items() if "mAP" in k or "mIoU" in k or "acc" in k}
        graphical = {k: v for k, v in metrics.items() if k not in kpi}
        self.logger.write("RUNNING", f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs} finished",
                          epoch=trainer.current_epoch, max_epoch=_last_index(trainer),
                          global_step=trainer.global_step, time_per_epoch=round(elapsed, 3),
                          eta=round(elapsed * remaining, 1), kpi=kpi, graphical=graphical)

    def on_train_end(self, trainer, pl_module) -> None:
        self.logger.write("SUCCESS", "Training finished", epoch=trainer.current_epoch,
                          global_step=trainer.global_step,
                          elapsed_s=round(time.time() - self._start, 1))

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.logger is not None:
            self.logger.write("FAILURE", f"{exception.__class__.__name__}: {exception}", verbosity="ERROR")
