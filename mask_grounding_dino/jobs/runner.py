"""The runner: the one process per workspace that launches Pending jobs.

It is started on demand (by create, retry, chain, or any look that finds Pending jobs and
no runner) as a detached process, holds ``runner.lock`` (an exclusive ``flock``: released by
the system when the runner dies, so a crashed runner never blocks the next one), and every
``POLL_S`` seconds: settles dead jobs (lifecycle.reap), fails jobs whose parent failed, and
claims ready jobs up to ``max_concurrent``, starting a supervisor for each. It exits when no
job is Pending; running jobs do not need it (their supervisors record their end).

    python -m mask_grounding_dino.jobs.runner --workspace DIR [--db URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from ..utils.log import enable_console, get_logger
from . import lifecycle, processes
from .settings import POLL_S
from .status import ERROR, RUNNING

log = get_logger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one runner is not enforced
    fcntl = None


class RunnerLock:
    """Non-blocking exclusive lock on a file."""

    def __init__(self, path: str):
        self.path = path
        self._handle = None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None


#: Processes started here, with the (workspace, job id, attempt) of a supervisor.
_spawned: list[tuple[subprocess.Popen, tuple | None]] = []


def _reap_children() -> None:
    """Collect exited children (no zombies are left), and fail the attempt of a supervisor that
    exited before registering (it could not even start: its log says why)."""
    alive = []
    for popen, launched in _spawned:
        code = popen.poll()
        if code is None:
            alive.append((popen, launched))
        elif launched is not None:
            workspace, job_id, attempt = launched
            lifecycle.fail_launch(workspace.store, job_id, attempt,
                                  f"its supervisor {processes.describe_exit(code)} before starting the action; "
                                  "see the job's log.txt")
    _spawned[:] = alive


def runner_running(workspace) -> bool:
    lock = RunnerLock(workspace.lock_path)
    if lock.acquire():
        lock.release()
        return False
    return True


def ensure_runner(workspace) -> bool:
    """Start a runner for ``workspace`` if jobs are Pending and none runs; True if one was started."""
    _reap_children()
    if not workspace.has_pending() or runner_running(workspace):
        return False
    argv = [sys.executable, "-m", "mask_grounding_dino.jobs.runner", "--workspace", workspace.path,
            "--db", workspace.database_url]
    _spawned.append((processes.spawn(argv, log_path=workspace.runner_log, cwd=workspace.path), None))
    return True


def _launch(workspace, job) -> None:
    os.makedirs(job.results_dir, exist_ok=True)
    argv = [sys.executable, "-m", "mask_grounding_dino.jobs.supervisor", "--workspace", workspace.path,
            "--db", workspace.database_url, job.id, str(job.attempts)]
    try:
        _spawned.append((processes.spawn(argv, log_path=job.log_path, cwd=job.workdir),
                         (workspace, job.id, job.attempts)))
    except OSError as exc:  # e.g. the folder the job was created in is gone
        lifecycle.finish(workspace.store, job.id, job.attempts, ERROR, f"cannot start its supervisor: {exc}", {})


def tick(workspace, me: processes.ProcessId) -> list:
    """One pass: settle the dead, fail the blocked, launch the ready. Returns the jobs launched."""
    store = workspace.store
    lifecycle.reap(store)
    with store.write() as conn:
        lifecycle.fail_blocked(store, conn)
        claimed = lifecycle.claim_ready(store, conn, workspace.max_concurrent, me)
    for job in claimed:
        _launch(workspace, job)
    _reap_children()
    return claimed


def run(workspace) -> int:
    lock = RunnerLock(workspace.lock_path)
    if not lock.acquire():
        return 0  # another runner has this workspace
    me = processes.identify()
    log.info(f"{time.strftime('%Y-%m-%d %H:%M:%S')} runner pid {me.pid} started")
    try:
        while True:
            for job in tick(workspace, me):
                log.info(f"{time.strftime('%H:%M:%S')} launched {job.label} attempt {job.attempts}")
            if not workspace.has_pending():
                # Release, then look again: a job created in between either sees the lock free
                # (and starts a runner) or is seen here.
                lock.release()
                if not workspace.has_pending() or not lock.acquire():
                    break
            time.sleep(POLL_S)
    finally:
        lock.release()
    running = workspace.count((RUNNING,))
    log.info(f"{time.strftime('%H:%M:%S')} runner pid {me.pid} exits: nothing pending ({running} running)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .workspace import Workspace

    parser = argparse.ArgumentParser(prog="python -m mask_grounding_dino.jobs.runner")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--db", default=None)
    args = parser.parse_args(argv)
    enable_console()  # this process's stdout is the runner's log file
    return run(Workspace(args.workspace, database_url=args.db, start_runner=False))


if __name__ == "__main__":
    raise SystemExit(main())
