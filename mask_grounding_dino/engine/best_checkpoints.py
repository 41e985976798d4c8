"""The best checkpoints by a validation metric (``train.checkpointer``, TAO 7.3's retention knob).

At the end of each validation the monitored metric ranks the state just validated; when it
is among the ``save_top_k`` best, a full training checkpoint ``model_best_{epoch:03d}.pth``
(the ``filename`` pattern) is written and the one that fell out of the top k is deleted.
Only files this callback wrote, in its own folder, are ever deleted; its ranking travels in
every checkpoint, so a resumed run keeps ranking (and pruning) the same files.
"""

from __future__ import annotations

import math
import os
import re

import lightning.pytorch as pl

from ..config.train import DEFAULT_MONITOR, DEFAULT_MONITOR_MODE
from ..errors import SpecError

_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


def default_mode(monitor: str) -> str:
    """``min`` for a loss, else the network's default (``max``: mAP, mIoU, accuracies)."""
    return "min" if "loss" in monitor.lower() else DEFAULT_MONITOR_MODE


def format_name(pattern: str, values: dict, insert_names: bool = False) -> str:
    """Fill ``{name}`` / ``{name:fmt}`` fields of ``pattern`` from ``values`` (``name_value`` when
    ``insert_names``); path separators in the result become ``_``."""
    def fill(match: re.Match) -> str:
        key, spec = match.group(1), match.group(2) or ""
        text = format(values[key], spec)
        return f"{key}_{text}" if insert_names else text

    return _FIELD.sub(fill, pattern).replace(os.sep, "_")


class BestCheckpoints(pl.Callback):
    """Args:
        dirpath: folder of the best checkpoints.
        monitor: metric name as logged (``[bbox] val_mAP@50``); mode: ``max`` or ``min``.
        save_top_k: how many to keep; filename: pattern without ``.pth`` ({epoch}, {step}, {<monitor>}).
    """

    def __init__(self, dirpath: str, monitor: str | None = None, mode: str | None = None, save_top_k: int = 1,
                 filename: str = "model_best_{epoch:03d}", auto_insert_metric_name: bool = False):
        self.dirpath = dirpath
        self.monitor = monitor or DEFAULT_MONITOR
        self.mode = mode or default_mode(self.monitor)
        self.save_top_k = max(1, int(save_top_k))
        self.filename = filename
        self.insert_names = auto_insert_metric_name
        unknown = [m.group(1) for m in _FIELD.finditer(filename) if m.group(1) not in ("epoch", "step", self.monitor)]
        if unknown:
            raise SpecError(f"train.checkpointer.filename: unknown field {{{unknown[0]}}} in {filename!r}; "
                            f"allowed: {{epoch}}, {{step}}, {{{self.monitor}}}")
        self.best: list[dict] = []  # {"name", "score", "epoch", "step"}, best first

    def state_dict(self) -> dict:
        return {"folder": os.path.realpath(self.dirpath), "monitor": self.monitor, "best": list(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("folder") == os.path.realpath(self.dirpath) and state_dict.get("monitor") == self.monitor:
            self.best = [dict(b) for b in state_dict.get("best", [])]

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def _score(self, trainer) -> float | None:
        """The monitored value, the same on every process (rank 0 holds the metrics)."""
        found = None
        if trainer.is_global_zero:
            metrics = trainer.callback_metrics
            found = float(metrics[self.monitor]) if self.monitor in metrics else sorted(metrics)
        found = trainer.strategy.broadcast(found, src=0)
        if isinstance(found, list):
            raise SpecError(f"train.checkpointer.monitor: '{self.monitor}' is not a metric of this run; "
                            f"logged: {', '.join(found)}")
        return found

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        score = self._score(trainer)
        if score is None or not math.isfinite(score):
            return
        if len(self.best) >= self.save_top_k and not self._better(score, self.best[-1]["score"]):
            return
        values = {"epoch": trainer.current_epoch, "step": trainer.global_step, self.monitor: score}
        name = format_name(self.filename, values, self.insert_names) + ".pth"
        trainer.save_checkpoint(os.path.join(self.dirpath, name), weights_only=False)
        ranked = [b for b in self.best if b["name"] != name]  # a pattern without {epoch} reuses one name
        ranked.append({"name": name, "score": score, "epoch": trainer.current_epoch, "step": trainer.global_step})
        ranked.sort(key=lambda b: b["score"], reverse=self.mode == "max")
        self.best, dropped = ranked[:self.save_top_k], ranked[self.save_top_k:]
        if trainer.is_global_zero:
            for entry in dropped:
                path = os.path.join(self.dirpath, entry["name"])
                if os.path.isfile(path) and not os.path.islink(path):
                    os.remove(path)
