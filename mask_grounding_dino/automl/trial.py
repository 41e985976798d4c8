"""One trial = one train job (the jobs package: a detached process through the public CLI,
watched, canceled and retried like any job), trained in that job's folder.

Each validated epoch is reported to Optuna as it appears in the job's ``val_metrics.jsonl``;
a pruned trial's job is canceled at once. A trial repeated after its worker died (Optuna
copies its parameters and attributes, the job id among them) takes the old job over: it
watches it if it still runs, reads it if it finished meanwhile, and retries it (the job
resumes from its own latest checkpoint) if it failed, so no epoch is trained twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import optuna

from ..jobs.status import CANCELED, DONE, ERROR, TERMINAL
from ..utils.log import get_logger
from . import metric as metrics

log = get_logger(__name__)
POLL_S = 1.0
FOLDER_ATTR, JOB_ATTR, VALUES_ATTR, REASON_ATTR = "experiment_dir", "job_id", "spec_values", "fail_reason"


class TrialFailed(Exception):
    """The trial's job ended without a metric (recorded as FAIL, never as a score)."""


@dataclasses.dataclass
class TrialContext:
    """What every trial of a study shares."""

    workspace: Any  # jobs.Workspace
    automl_dir: str
    base_data: dict  # the spec file's contents (+ specs), nested
    base_overrides: dict  # the user's dotted overrides
    metric: str
    direction: str
    summary: str
    job_timeout_s: float | None = None


def _own_job(ctx: TrialContext, trial):
    """The job an earlier run of this trial started (retried trials inherit its id), or None."""
    old = trial.user_attrs.get(JOB_ATTR)
    if not old:
        return None
    try:
        job = ctx.workspace.get_job(old)
    except Exception:  # noqa: BLE001 - a job of another machine's workspace: this worker starts its own
        return None
    if job.status in (ERROR, CANCELED):
        log.info(f"trial {trial.number}: retrying its earlier job {job.label} ({job.status}); it resumes from "
                 "its latest checkpoint")
        ctx.workspace.retry(job.id)
    else:
        log.info(f"trial {trial.number}: taking over its earlier job {job.label} ({job.status})")
    return ctx.workspace.get_job(job.id)


def run_job(ctx: TrialContext, trial, overrides: dict[str, Any], *, prune: bool = True,
            first_epoch: int = 1) -> tuple[float, int]:
    """Run the trial's train job with ``overrides`` over the study's spec; report each validated
    epoch >= ``first_epoch``; returns (value, epoch) that count. Raises ``TrialPruned`` or
    :class:`TrialFailed`."""
    job = _own_job(ctx, trial)
    if job is None:
        job = ctx.workspace.create_job("train", specs=ctx.base_data,
                                       spec_overrides={**ctx.base_overrides, **overrides},
                                       automl_policy="off", name=f"trial-{trial.number}")
        trial.set_user_attr(JOB_ATTR, job.id)
    folder = os.path.join(job.results_dir, "train")
    trial.set_user_attr(FOLDER_ATTR, folder)
    reported: set[int] = set()
    started = time.time()
    while True:
        job = ctx.workspace.get_job(job.id)
        for epoch, value in sorted(metrics.epoch_values(folder, ctx.metric).items()):
            if epoch in reported or epoch < first_epoch:
                continue
            trial.report(value, epoch)
            reported.add(epoch)
            if prune and job.status not in TERMINAL and trial.should_prune():
                ctx.workspace.cancel(job.id)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({ctx.metric} {value:.4f})")
        if job.status in TERMINAL:
            break
        if ctx.job_timeout_s and time.time() - started > ctx.job_timeout_s:
            ctx.workspace.cancel(job.id)
            raise TrialFailed(f"job {job.label} ran past {ctx.job_timeout_s:.0f} s; canceled")
        time.sleep(POLL_S)
    if job.status != DONE:
        raise TrialFailed(f"job {job.label} {job.status}: {job.reason or 'see its log.txt'} ({job.log_path})")
    picked = metrics.summarise({e: v for e, v in metrics.epoch_values(folder, ctx.metric).items() if e >= first_epoch},
                               ctx.direction, ctx.summary)
    if picked is None:
        raise TrialFailed(f"job {job.label} finished without recording {ctx.metric!r} in {folder}/val_metrics.jsonl")
    return picked
