"""Progress bar with loss, learning rate and the time left for the whole run."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from ..utils.log import get_logger

log = get_logger(__name__)


def format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def time_left(trainer, t0: float | None, step0: int) -> str | None:
    """Estimated time to the end of training from the steps done since ``t0``."""
    done = trainer.global_step - step0
    total = trainer.estimated_stepping_batches
    if t0 is None or done <= 0 or not total or total == float("inf"):
        return None
    return format_seconds((time.time() - t0) / done * max(0, total - trainer.global_step))


def epoch_label(trainer) -> str:
    """``epoch 3/8`` for the third epoch: counted from 1 everywhere a person reads it (bar, lines,
    status messages, plots); file names and JSON fields keep TAO's 0-based index."""
    total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    return f"epoch {trainer.current_epoch + 1}{total}"


class ProgressBar(TQDMProgressBar):
    """TQDM bar titled ``Epoch 3/8`` whose postfix adds ``left`` (estimated time to the end of training)."""

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._t0 = None
        self._step0 = 0

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._t0 = time.time()
        self._step0 = trainer.global_step
        self.train_progress_bar.set_description(epoch_label(trainer).capitalize())

    def on_train_epoch_start(self, trainer, *args):
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(epoch_label(trainer).capitalize())

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        left = time_left(trainer, self._t0, self._step0)
        if left is not None:
            metrics["left"] = left
        return metrics


class ProgressLines(Callback):
    """Plain progress lines for logs (stderr not a terminal: CI, nohup, job schedulers), where a
    redrawn bar would write one line per step. Prints about every ``every_s`` seconds and at
    the end of each epoch: ``epoch 2/8  step 250/800  loss 12.3  lr 5e-04  left 06:10``."""

    def __init__(self, every_s: float = 30.0):
        self.every_s = every_s
        self._t0 = None
        self._step0 = 0
        self._last = 0.0

    def on_train_start(self, trainer, pl_module):
        self._t0 = self._last = time.time()
        self._step0 = trainer.global_step

    def _line(self, trainer) -> str:
        metrics = trainer.progress_bar_metrics
        parts = [epoch_label(trainer)]
        total = trainer.estimated_stepping_batches
        parts.append(f"step {trainer.global_step}/{int(total)}" if total != float("inf")
                     else f"step {trainer.global_step}")
        for key in ("train_loss", "lr"):
            if key in metrics:
                parts.append(f"{key.replace('train_', '')} {float(metrics[key]):.4g}")
        left = time_left(trainer, self._t0, self._step0)
        if left is not None:
            parts.append(f"left {left}")
        return "  ".join(parts)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.is_global_zero and time.time() - self._last >= self.every_s:
            self._last = time.time()
            log.info(self._line(trainer))

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            self._last = time.time()
            log.info(self._line(trainer))
