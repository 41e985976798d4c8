"""The optimised metric: which key, which direction, and a trial's value.

The direction comes from here alone: ``direction`` when set, else minimize for a metric named
like a loss and maximize otherwise (the rule TAO applies always; here only as the default).
A trial's value is its best validated epoch's (``metric_summary: best``) or its last one's
(``last``, TAO). A trial without the metric has no value: it fails, it never scores 0.
"""

from __future__ import annotations

import math

from ..jobs import artifacts
from .errors import AutoMLError

#: Referring (VG) validation keys (metrics/referring.py), besides val_Pr@<threshold>.
_REFERRING = ("val_mIoU", "val_overall_IoU", "val_mAP50", "val_mAP", "val_T_acc", "val_N_acc")


def known_metrics() -> list[str]:
    """The keys a training run's validation writes per epoch (val_metrics.jsonl)."""
    from ..metrics.coco import IOU_TYPES, STAT_NAMES

    keys = [f"[{kind}] val_{name}" for kind in IOU_TYPES for name in STAT_NAMES]
    return keys + list(_REFERRING) + ["val_loss"]


def check_metric(metric: str) -> None:
    known = known_metrics()
    if metric not in known and not metric.startswith("val_Pr@"):
        import difflib

        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise AutoMLError(f"metric {metric!r} is not produced by training's validation; {hint}"
                          f"allowed: {', '.join(known)}")


def direction_of(metric: str, direction: str | None) -> str:
    if direction:
        return direction
    return "minimize" if "loss" in metric.lower() else "maximize"


def epoch_values(folder: str | None, metric: str) -> dict[int, float]:
    """Epochs done (1-based) -> the metric, from a train folder's validation records."""
    if folder is None:
        return {}
    out = {}
    for record in artifacts.validation_records(folder):
        value = record["metrics"].get(metric, record.get(metric))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            out[int(record["epoch"]) + 1] = float(value)
    return out


def summarise(values: dict[int, float], direction: str, summary: str) -> tuple[float, int] | None:
    """(value, epoch) that counts for the trial, or None when no epoch recorded the metric."""
    if not values:
        return None
    if summary == "last":
        epoch = max(values)
        return values[epoch], epoch
    sign = 1.0 if direction == "maximize" else -1.0
    # On a tie the later epoch: the model trained longer (as the job layer's best checkpoint).
    epoch = max(values, key=lambda e: (sign * values[e], e))
    return values[epoch], epoch
