"""The supervisor: one small process per running attempt, started by the runner.

It registers itself on the attempt (so a second supervisor for the same attempt, or one
for an attempt queued again meanwhile, stops at once), fills the spec (spec_params) and
writes it to ``<job folder>/spec.yaml``, starts the action through the public command line

    python -m mask_grounding_dino <action> -e <job folder>/spec.yaml
    (an AutoML train job: python -m mask_grounding_dino automl -e ... [--automl-spec ...])

as the leader of a new process group, with its output appended to ``log.txt``; then it
beats every ``HEARTBEAT_S`` seconds, stops the group when a cancel is requested (SIGTERM,
SIGKILL after ``CANCEL_GRACE_S``), and records the end: Done / Error (with the exit code or
signal and the action's error lines) / Canceled, the metrics and outputs, and a final
``status.json`` line. Started detached, it and the action survive the command that created
the job. If the supervisor itself dies, the heartbeat stops and the reaper records the job
as Error.

    python -m mask_grounding_dino.jobs.supervisor --workspace DIR [--db URL] JOB_ID ATTEMPT
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from ..errors import UserError
from ..utils.log import enable_console, get_logger
from . import lifecycle, processes
from .automl_policy import AUTOML
from .job import Job
from .logs import failure_lines
from .outputs import collect
from .settings import CANCEL_GRACE_S, HEARTBEAT_S
from .spec_params import fill_spec
from .specs import request_config
from .status import CANCELED, DONE, ERROR
from .status_file import FAILURE, STARTED, SUCCESS, append_status
from .workspace import AUTOML_SETTINGS_FILE

log = get_logger(__name__)


def _say(text: str) -> None:
    log.info(f"[job {time.strftime('%H:%M:%S')}] {text}")


def _prepare(workspace, job: Job) -> list[dict]:
    """Fill and write the spec as run; raises UserError when it cannot be completed."""
    from ..config import load_spec, save_spec

    parent = workspace.get_job(job.parent_id) if job.parent_id else None
    cfg = request_config(job.spec_data, job.spec_overrides)
    filled = fill_spec(cfg, job.action, job.results_dir, parent)
    save_spec(cfg, job.spec_path)
    load_spec(job.spec_path)  # what the action will read must load
    return filled


class _Stop:
    """SIGTERM to the supervisor (a shutdown): stop the action like a cancel, end as Error."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True


def _watch(workspace, job: Job, child: subprocess.Popen, stop: _Stop) -> int:
    """Beat until the action's process ends; stop its group on cancel. Returns its exit code."""
    signalled_at = None
    while True:
        try:
            return child.wait(timeout=HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            pass
        try:
            cancel = lifecycle.heartbeat(workspace.store, job.id, job.attempts)
        except Exception as exc:  # noqa: BLE001 - a busy or unreachable database must not stop the job
            _say(f"heartbeat not written ({exc.__class__.__name__}: {exc}); retrying")
            continue
        now = time.time()
        if (cancel or stop.requested or cancel is None) and signalled_at is None:
            _say("cancel requested: SIGTERM to the job's processes" if cancel else "stopping the job's processes")
            processes.signal_group(child.pid, signal.SIGTERM)
            signalled_at = now
        elif signalled_at is not None and now - signalled_at > CANCEL_GRACE_S:
            processes.signal_group(child.pid, signal.SIGKILL)


def _outcome(workspace, job: Job, code: int, stop: _Stop, log_offset: int) -> tuple[str, str | None]:
    if code == 0:
        return DONE, None
    current = workspace.get_job(job.id)
    if current.cancel_requested:
        return CANCELED, "canceled by user"
    why = processes.describe_exit(code)
    if stop.requested:
        why += " (its supervisor was asked to stop)"
    lines = failure_lines(job.log_path, log_offset)
    return ERROR, f"{why}: {' | '.join(lines)}" if lines else why


def _fail_to_start(workspace, job: Job, reason: str) -> int:
    _say(reason)
    append_status(job.status_path, FAILURE, reason, verbosity="ERROR")
    lifecycle.finish(workspace.store, job.id, job.attempts, ERROR, reason, {"exit_code": None})
    workspace.start_runner()
    return 0


def _read_outputs(job: Job) -> tuple[dict, dict]:
    from ..config import load_spec

    try:
        return collect(job.action, job.results_dir, load_spec(job.spec_path))
    except Exception as exc:  # noqa: BLE001 - unreadable outputs are reported, the status still recorded
        _say(f"outputs not read: {exc.__class__.__name__}: {exc}")
        return {}, {}


def _record_end(workspace, job: Job, status: str, reason: str | None, code: int, seconds: float) -> None:
    metrics, outputs = _read_outputs(job)
    if status == DONE and "model" not in outputs and job.action in ("train", "export", "gen_trt_engine"):
        _say(f"note: the {job.action} job produced no model file")
    _say(f"{status} after {seconds:.1f} s" + (f": {reason}" if reason else ""))
    append_status(job.status_path, SUCCESS if status == DONE else FAILURE, reason or f"{job.action} job finished",
                  job_id=job.id, verbosity="INFO" if status == DONE else "ERROR", kpi=metrics)
    lifecycle.finish(workspace.store, job.id, job.attempts, status, reason,
                     {"exit_code": code, "metrics": metrics, "outputs": outputs})


def supervise(workspace, job_id: str, attempt: int) -> int:
    me = processes.identify()
    if not lifecycle.register(workspace.store, job_id, attempt, "supervisor", me):
        return 0  # this attempt was settled or queued again before it could start
    stop = _Stop()
    job = workspace.get_job(job_id, settle=False)
    log_offset = os.path.getsize(job.log_path) if os.path.exists(job.log_path) else 0
    _say(f"{job.action} job {job.id} attempt {attempt} on {me.host} (supervisor pid {me.pid})")
    if job.automl_decision is not None:
        prefix = "AutoML: " if job.automl_decision == AUTOML else ""
        _say(f"automl_policy {job.automl_policy}: {prefix}{job.automl_note}")
    try:
        filled = _prepare(workspace, job)
    except UserError as exc:
        return _fail_to_start(workspace, job, "cannot start: " + " | ".join(exc.problems))
    lifecycle.record(workspace.store, job.id, attempt, {"filled": filled})
    for item in filled:
        if item["value"] is not None or item["function"] == "drop":
            value = item["value"] if item["value"] is not None else ""
            _say(f"{item['key']} <- {item['function']}: {value} {item['note']}".rstrip())
    argv = [sys.executable, "-m", "mask_grounding_dino", job.action, "-e", job.spec_path]
    if job.action == "train" and job.automl_decision == AUTOML:
        argv = [sys.executable, "-m", "mask_grounding_dino", "automl", "-e", job.spec_path]
        settings = os.path.join(job.results_dir, AUTOML_SETTINGS_FILE)
        argv += ["--automl-spec", settings] if os.path.isfile(settings) else []
    _say("run: " + " ".join(argv))
    append_status(job.status_path, STARTED, f"{job.action} job started (attempt {attempt})", job_id=job.id)
    started = time.time()
    try:
        child = subprocess.Popen(argv, cwd=job.workdir, env=processes.child_env({"PYTHONUNBUFFERED": "1"}),
                                 stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    except OSError as exc:  # e.g. the folder the job was created in is gone
        return _fail_to_start(workspace, job, f"cannot start the action in {job.workdir}: {exc}")
    action_process = processes.identify(child.pid)
    lifecycle.register(workspace.store, job.id, attempt, "process", action_process)
    code = _watch(workspace, job, child, stop)
    processes.signal_group(child.pid, signal.SIGKILL, action_process.start)  # workers left by a killed action
    status, reason = _outcome(workspace, job, code, stop, log_offset)
    _record_end(workspace, job, status, reason, code, time.time() - started)
    workspace.start_runner()
    return 0


def main(argv: list[str] | None = None) -> int:
    from .workspace import Workspace

    parser = argparse.ArgumentParser(prog="python -m mask_grounding_dino.jobs.supervisor")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--db", default=None)
    parser.add_argument("job_id")
    parser.add_argument("attempt", type=int)
    args = parser.parse_args(argv)
    enable_console()  # this process's stdout is the job's log.txt
    return supervise(Workspace(args.workspace, database_url=args.db, start_runner=False), args.job_id, args.attempt)


if __name__ == "__main__":
    raise SystemExit(main())
