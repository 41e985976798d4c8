"""What people read: the ``jobs list`` table and the ``jobs show`` page."""

from __future__ import annotations

import datetime
import os
import time

from .artifacts import MONITOR
from .job import Job
from .status import PENDING, RUNNING

#: The metrics ``show`` prints first, per action (``--json`` has them all).
KEY_METRICS = {
    "train": ("best_epoch", "[bbox] val_mAP@50", "[bbox] val_mAP@50-95", "[segm] val_mAP@50", "[segm] val_mAP@50-95",
              "last_epoch", f"last {MONITOR}"),
    "evaluate": ("[bbox] test_mAP@50", "[bbox] test_mAP@50-95", "[segm] test_mAP@50", "[segm] test_mAP@50-95",
                 "test_mIoU", "test_overall_IoU", "test_mAP50", "test_N_acc", "test_T_acc"),
    "export": ("max_abs_diff", "check_ok"),
    "inference": ("images", "results"),
}


def when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    moment = datetime.datetime.fromtimestamp(stamp)
    if moment.date() == datetime.date.today():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def ran(job: Job) -> float | None:
    """Seconds of running over all attempts, the current one included."""
    total = job.run_seconds or 0.0
    if job.status == RUNNING and job.started_at:
        total += time.time() - job.started_at
    return total if total or job.started_at else None


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"


def headline(job: Job) -> str:
    """The one number of a job (list column)."""
    metrics = job.metrics or {}
    if job.action == "train" and MONITOR in metrics:
        return f"{MONITOR} {_number(metrics[MONITOR])} (epoch {metrics.get('best_epoch')})"
    if job.action == "evaluate":
        for key in KEY_METRICS["evaluate"]:
            if key in metrics:
                return f"{key} {_number(metrics[key])}"
    if job.action == "export" and metrics.get("max_abs_diff") is not None:
        return f"max abs diff {_number(metrics['max_abs_diff'])}"
    if job.action == "inference" and "results" in metrics:
        return f"{metrics['results']} results on {metrics.get('images', '?')} images"
    return ""


def _note(job: Job, names: dict[str, Job]) -> str:
    if job.status == PENDING and job.parent_id and names.get(job.parent_id) and \
            names[job.parent_id].status != "Done":
        return f"waits for {job.parent_id[:8]}"
    if job.reason:
        return job.reason if len(job.reason) <= 70 else job.reason[:67] + "..."
    return headline(job)


def table(jobs: list[Job]) -> str:
    names = {j.id: j for j in jobs}
    header = ("ID", "NAME", "ACTION", "STATUS", "PARENT", "CREATED", "STARTED", "RAN", "TRIES", "RESULT")
    rows = [(j.short_id, j.name or "-", j.action, j.status, j.parent_id[:8] if j.parent_id else "-", when(j.created_at),
             when(j.started_at), duration(ran(j)), str(j.attempts), _note(j, names)) for j in jobs]
    if not rows:
        return "no jobs"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _section(title: str, pairs: list[tuple[str, str]]) -> list[str]:
    if not pairs:
        return []
    width = max(len(k) for k, _ in pairs)
    return [title] + [f"  {k.ljust(width)}  {v}" for k, v in pairs]


def page(job: Job, parent: Job | None, children: list[Job], events: list[dict]) -> str:
    """``jobs show``: status, spec as run, parent, folder, metrics, files, timings, history."""
    waited = (job.started_at - job.queued_at) if job.started_at and job.started_at >= job.queued_at else None
    head = [("id", job.id), ("name", job.name or "-"), ("action", job.action), ("status", job.status),
            ("reason", job.reason or "-"),
            ("parent", f"{parent.label} {parent.status}" if parent else "-"),
            ("children", ", ".join(f"{c.label} {c.status}" for c in children) or "-")]
    if job.automl_decision is not None:
        head.append(("automl", f"policy {job.automl_policy} -> {job.automl_decision}: {job.automl_note}"))
    head += [("created", when(job.created_at)), ("started", when(job.started_at)),
             ("finished", when(job.finished_at)), ("waited", duration(waited)), ("ran", duration(ran(job))),
             ("attempts", str(job.attempts)), ("results", job.results_dir),
             ("spec as run", job.spec_path if os.path.exists(job.spec_path) else "- (not launched yet)"),
             ("spec given", job.spec_file or "-"), ("log", job.log_path)]
    if job.spec_overrides:
        head.append(("overrides", " ".join(f"{k}={v}" for k, v in job.spec_overrides.items())))
    lines = _section(f"Job {job.short_id}", head)
    filled = [(f["key"], f"<- {f['function']}: {f['value']}" + (f"  ({f['note']})" if f["note"] else ""))
              for f in (job.filled or []) if f["value"] is not None or f["function"] == "drop"]
    lines += _section("Filled by the job layer", filled)
    metrics = job.metrics or {}
    shown = [(k, _number(metrics[k])) for k in KEY_METRICS.get(job.action, ()) if k in metrics]
    shown = shown or [(k, _number(v)) for k, v in list(metrics.items())[:12]]
    lines += _section("Metrics" + (f" (best {MONITOR})" if job.action == "train" and shown else ""), shown)
    outputs = job.outputs or {}
    files = [(k, str(v)) for k, v in outputs.items() if k != "model_note"]
    if outputs.get("model_note"):
        files.append(("model chosen", outputs["model_note"]))
    lines += _section("Files", files)
    lines += _section("History", [(when(e["at"]), f"{e['status']}: {e['message']}") for e in events])
    return "\n".join(lines)
