"""Progress bar with loss, learning rate and the time left for the whole run."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import TQDMProgressBar


def format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar(TQDMProgressBar):
    """TQDM bar whose postfix adds ``left`` (estimated time to the end of training)."""

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._t0 = None
        self._step0 = 0

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._t0 = time.time()
        self._step0 = trainer.global_step

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        done = trainer.global_step - self._step0
        total = trainer.estimated_stepping_batches
        if self._t0 is not None and done > 0 and total and total != float("inf"):
            per_step = (time.time() - self._t0) / done
            metrics["left"] = format_seconds(per_step * max(0, total - trainer.global_step))
        return metrics
