"""Finding what a job left in its results folder: checkpoints, validation records, the best model.

Layout: an action writes into ``<action>.results_dir`` when the spec sets it, else
``<results_dir>/<action>/`` (TAO's rule), and train, in versions before that rule, into
``<results_dir>`` itself; so a job's files are looked for in that order
(:func:`action_folders`).

Training files (TAO's names): ``model_epoch_<EEE>_step_<SSSSS>.pth`` checkpoints,
``mask_gdino_model_latest.pth`` (a link to the newest), ``val_metrics.jsonl`` (one record per
validation: ``epoch``, ``global_step``, ``metrics``) and ``status.json`` (JSON Lines; per-epoch
lines carry ``kpi``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator

#: TAO's monitoring metric for Mask Grounding DINO: what "best" means.
MONITOR = "[bbox] val_mAP@50"
LATEST_LINK = "mask_gdino_model_latest.pth"
_CHECKPOINT = re.compile(r"^model_epoch_(\d+)_step_(\d+)\.pth$")


def action_folders(results_dir: str, action: str, own: str | None = None) -> list[str]:
    """Where an action's files can be, most specific first."""
    folders = [own] if own else []
    return folders + [os.path.join(results_dir, action), results_dir]


def json_lines(path: str) -> Iterator[dict]:
    """The objects of a JSON Lines file; a line cut short by a kill is skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def checkpoints(folder: str) -> list[tuple[int, int, str]]:
    """``(step, epoch, path)`` of the TAO-named checkpoints in ``folder``, oldest first."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = _CHECKPOINT.match(name)
        if match:
            found.append((int(match.group(2)), int(match.group(1)), os.path.join(folder, name)))
    return sorted(found)


def latest_checkpoint(folder: str) -> str | None:
    """The checkpoint training resumes from: the target of the latest link, else the newest file."""
    link = os.path.join(folder, LATEST_LINK)
    if os.path.isfile(link):
        return os.path.realpath(link)
    found = checkpoints(folder)
    return found[-1][2] if found else None


def train_folder(results_dir: str, own: str | None = None) -> str | None:
    """The folder a train job wrote its checkpoints and records into (None when there is none yet)."""
    for folder in action_folders(results_dir, "train", own):
        if checkpoints(folder) or os.path.exists(os.path.join(folder, "val_metrics.jsonl")):
            return folder
    return None


def validation_records(folder: str) -> list[dict]:
    """One ``{"epoch", "global_step", "metrics"}`` per validated epoch (the last record of an
    epoch wins: a resumed run may validate an epoch again). From ``val_metrics.jsonl``, else from
    the ``kpi`` of ``status.json`` lines."""
    by_epoch: dict[int, dict] = {}
    for record in json_lines(os.path.join(folder, "val_metrics.jsonl")):
        if isinstance(record.get("metrics"), dict) and "epoch" in record:
            by_epoch[int(record["epoch"])] = record
    if not by_epoch:
        for line in json_lines(os.path.join(folder, "status.json")):
            if isinstance(line.get("kpi"), dict) and line["kpi"] and "epoch" in line:
                by_epoch[int(line["epoch"])] = {"epoch": line["epoch"], "global_step": line.get("global_step"),
                                                "metrics": line["kpi"]}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _score(record: dict, metric: str) -> float | None:
    value = record["metrics"].get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None  # missing, NaN, or COCO's -1 (nothing to score)
    return float(value)


@dataclasses.dataclass(frozen=True)
class BestModel:
    """The checkpoint a train job passes on, and why that one."""

    path: str
    epoch: int | None
    step: int | None
    metric: str
    value: float | None
    note: str
    record: dict | None = None


def best_checkpoint(folder: str, metric: str = MONITOR) -> BestModel | None:
    """The checkpoint of the validation with the highest ``metric`` (on a tie the later one, the
    model trained longer); the latest checkpoint when no validation recorded the metric or the
    best epoch's checkpoint was not kept. None when the folder holds no checkpoint."""
    saved = checkpoints(folder)
    latest = latest_checkpoint(folder)
    if latest is None:
        return None
    scored = [(score, r) for r in validation_records(folder) if (score := _score(r, metric)) is not None]
    if not scored:
        return BestModel(latest, None, None, metric, None, f"no validation recorded {metric}: the latest checkpoint")
    value, record = max(scored, key=lambda item: (item[0], item[1]["epoch"]))
    epoch, step = int(record["epoch"]), record.get("global_step")
    exact = [p for s, e, p in saved if e == epoch and (step is None or s == int(step))]
    if exact:
        return BestModel(exact[-1], epoch, int(step) if step is not None else None, metric, value,
                         f"best {metric} {value:.4f} at epoch {epoch}", record)
    return BestModel(latest, epoch, step, metric, value,
                     f"best {metric} {value:.4f} at epoch {epoch}, whose checkpoint was not kept "
                     "(train.checkpoint_interval): the latest checkpoint", record)
