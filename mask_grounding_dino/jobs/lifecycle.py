"""Status transitions. Each one is a single database transaction whose update applies only if
the job is still in the state it was seen in, so a kill at any moment leaves either the old
state or the new one, and of two processes racing for one transition only one wins.

  Pending  -> Running   claim (runner), counted against ``max_concurrent``
  Pending  -> Error     the parent ended Error / Canceled (``failed_parent`` records which)
  Pending  -> Canceled  cancel
  Running  -> Done | Error | Canceled   the supervisor, when the action's process ends
  Running  -> Error | Canceled          the reaper, when the supervisor died (kill -9, reboot)
  Running  -> Pending   the reaper, when the runner died between claim and launch (nothing ran)
  Error | Canceled -> Pending           retry (with the children that failed because of it)
"""

from __future__ import annotations

import signal
import time

from . import processes
from .errors import JobStateError
from .job import Job
from .settings import LAUNCH_TIMEOUT_S, STALE_AFTER_S
from .status import CANCELED, DONE, ERROR, FAILED, PENDING, RUNNING
from .store import Store

_CLEARED_RUN = {"supervisor_pid": None, "supervisor_start": None, "process_pid": None, "process_start": None,
                "exit_code": None, "reason": None}


# -- scheduling ---------------------------------------------------------------------------------
def fail_blocked(store: Store, conn) -> list[str]:
    """Pending jobs whose parent ended Error / Canceled become Error (repeated down the tree)."""
    failed = []
    while True:
        changed = False
        jobs = {row["id"]: row for row in store.select_jobs(conn)}
        for row in jobs.values():
            parent = jobs.get(row["parent_id"]) if row["parent_id"] else None
            if row["status"] != PENDING or parent is None or parent["status"] not in FAILED:
                continue
            label = Job.from_row(parent).label
            why = f": {parent['reason']}" if parent["reason"] else ""
            reason = f"parent job {label} ended {parent['status']}{why}"
            now = time.time()
            if store.update_job(conn, row["id"], {"status": ERROR, "reason": reason, "failed_parent": parent["id"],
                                                  "finished_at": now}, status=PENDING):
                store.add_event(conn, row["id"], ERROR, reason, now)
                failed.append(row["id"])
                changed = True
        if not changed:
            return failed


def claim_ready(store: Store, conn, max_concurrent: int, claimer: processes.ProcessId) -> list[Job]:
    """Claim the oldest Pending jobs whose parent is Done (or that have none), up to the limit."""
    free = max_concurrent - store.count(conn, (RUNNING,))
    if free <= 0:
        return []
    done = {row["id"] for row in store.select_jobs(conn, statuses=(DONE,))}
    pending = sorted(store.select_jobs(conn, statuses=(PENDING,)), key=lambda r: (r["queued_at"], r["created_at"]))
    claimed = []
    for row in pending:
        if len(claimed) == free:
            break
        if row["parent_id"] and row["parent_id"] not in done:
            continue
        now = time.time()
        attempt = row["attempts"] + 1
        values = {**_CLEARED_RUN, "status": RUNNING, "attempts": attempt, "started_at": now, "finished_at": None,
                  "heartbeat_at": now, "cancel_requested": False, "host": claimer.host, "boot_id": claimer.boot_id,
                  "claimer_pid": claimer.pid, "claimer_start": claimer.start}
        if store.update_job(conn, row["id"], values, status=PENDING, attempt=row["attempts"]):
            store.add_event(conn, row["id"], RUNNING, f"attempt {attempt} launched by runner pid {claimer.pid}", now)
            claimed.append(Job.from_row({**row, **values}))
    return claimed


# -- a running job --------------------------------------------------------------------------------
def register(store: Store, job_id: str, attempt: int, role: str, ident: processes.ProcessId) -> bool:
    """Record the supervisor (``role`` "supervisor", only once per attempt) or the action's
    process ("process") of a running attempt; False when the attempt is no longer running."""
    values = {f"{role}_pid": ident.pid, f"{role}_start": ident.start, "heartbeat_at": time.time()}
    once = {"supervisor_pid": None} if role == "supervisor" else {}
    with store.write() as conn:
        return store.update_job(conn, job_id, values, status=RUNNING, attempt=attempt, **once)


def heartbeat(store: Store, job_id: str, attempt: int) -> bool | None:
    """Beat; returns whether a cancel was requested, None when the attempt is no longer running."""
    with store.write() as conn:
        if not store.update_job(conn, job_id, {"heartbeat_at": time.time()}, status=RUNNING, attempt=attempt):
            return None
        return bool(store.get(conn, job_id)["cancel_requested"])


def record(store: Store, job_id: str, attempt: int, values: dict) -> None:
    """Store launch facts (``filled``) on a running attempt."""
    with store.write() as conn:
        store.update_job(conn, job_id, values, status=RUNNING, attempt=attempt)


def _end(store: Store, conn, row: dict, status: str, reason: str | None, values: dict | None = None) -> bool:
    now = time.time()
    ran = now - row["started_at"] if row["started_at"] else 0.0
    changes = {"status": status, "reason": reason, "finished_at": now, "heartbeat_at": now,
               "run_seconds": (row["run_seconds"] or 0.0) + ran, **(values or {})}
    if not store.update_job(conn, row["id"], changes, status=RUNNING, attempt=row["attempts"]):
        return False
    store.add_event(conn, row["id"], status, reason or f"attempt {row['attempts']} finished", now)
    return True


def finish(store: Store, job_id: str, attempt: int, status: str, reason: str | None, values: dict) -> bool:
    """The supervisor's last word on its attempt: Done / Error / Canceled with metrics and outputs."""
    with store.write() as conn:
        row = store.get(conn, job_id)
        if row is None or row["attempts"] != attempt:
            return False
        return _end(store, conn, row, status, reason, values)


def fail_launch(store: Store, job_id: str, attempt: int, reason: str) -> bool:
    """Error for an attempt whose supervisor never registered (it exited at start)."""
    with store.write() as conn:
        row = store.get(conn, job_id)
        if row is None or row["status"] != RUNNING or row["attempts"] != attempt or row["supervisor_pid"]:
            return False
        return _end(store, conn, row, ERROR, reason)


# -- the reaper ---------------------------------------------------------------------------------------
def _dead_reason(row: dict, now: float) -> str | None:
    """Why a Running job with a registered supervisor is dead, or None while it lives."""
    live = processes.alive(row["host"], row["boot_id"], row["supervisor_pid"], row["supervisor_start"])
    if live is True:
        return None
    if live is None:  # another host: trust the heartbeat
        quiet = now - (row["heartbeat_at"] or 0.0)
        return None if quiet < STALE_AFTER_S else f"no heartbeat from {row['host']} for {quiet:.0f} s"
    if row["boot_id"] and processes.boot_id() and row["boot_id"] != processes.boot_id():
        return "the machine restarted while the job ran"
    return (f"the job's supervisor (pid {row['supervisor_pid']}) is gone without recording an end: killed, or its "
            "machine went down")


def reap(store: Store) -> list[str]:
    """Settle Running jobs whose processes died; returns their ids. Called by the runner and by
    every look at the workspace (list, show, wait), so a dead job shows as such at once."""
    settled = []
    now = time.time()
    with store.write() as conn:
        for row in store.select_jobs(conn, statuses=(RUNNING,)):
            if row["supervisor_pid"]:
                reason = _dead_reason(row, now)
                if reason is None:
                    continue
                # What the supervisor started may still run (it was killed alone): stop it, the
                # job's folder is about to be reused by a retry.
                if processes.same_machine(row["host"], row["boot_id"]):
                    processes.signal_group(row["process_pid"], signal.SIGKILL, row["process_start"])
                status = CANCELED if row["cancel_requested"] else ERROR
                if _end(store, conn, row, status, "canceled by user" if status == CANCELED else reason):
                    settled.append(row["id"])
                continue
            claimer = processes.alive(row["host"], row["boot_id"], row["claimer_pid"], row["claimer_start"])
            waited = now - (row["started_at"] or now)
            if claimer is False:
                # The runner died after claiming, before a supervisor registered: the action never
                # started, so queue it again (a supervisor it did spawn finds the attempt gone and stops).
                values = {**_CLEARED_RUN, "status": PENDING, "attempts": row["attempts"] - 1, "started_at": None,
                          "heartbeat_at": None}
                if store.update_job(conn, row["id"], values, status=RUNNING, attempt=row["attempts"],
                                    supervisor_pid=None):
                    store.add_event(conn, row["id"], PENDING,
                                    "the runner that claimed it stopped before it started: queued again", now)
                    settled.append(row["id"])
            elif waited > LAUNCH_TIMEOUT_S:
                if _end(store, conn, row, ERROR, f"its supervisor did not start within {LAUNCH_TIMEOUT_S:.0f} s; "
                                                 "see the job's log.txt and the workspace's runner.log"):
                    settled.append(row["id"])
    return settled


# -- requests -------------------------------------------------------------------------------------
def cancel(store: Store, job: Job) -> str:
    """``"canceled"`` (it was Pending), ``"requested"`` (Running: its supervisor stops it) or
    ``"already"``; ``JobStateError`` for a job that already ended otherwise."""
    with store.write() as conn:
        row = store.get(conn, job.id)
        now = time.time()
        if row["status"] == PENDING:
            store.update_job(conn, job.id, {"status": CANCELED, "reason": "canceled by user", "finished_at": now},
                             status=PENDING)
            store.add_event(conn, job.id, CANCELED, "canceled by user while pending", now)
            return "canceled"
        if row["status"] == RUNNING:
            if not row["cancel_requested"]:
                store.update_job(conn, job.id, {"cancel_requested": True}, status=RUNNING)
                store.add_event(conn, job.id, RUNNING, "cancel requested", now)
            return "requested"
        if row["status"] == CANCELED:
            return "already"
    raise JobStateError(f"job {job.label} already ended {row['status']}; there is nothing to cancel")


def _descendants_failed_by(store: Store, conn, job_id: str) -> list[dict]:
    out, frontier = [], [job_id]
    while frontier:
        current = frontier.pop()
        for child in store.select_jobs(conn, parent_id=current):
            if child["status"] == ERROR and child["failed_parent"] == current:
                out.append(child)
                frontier.append(child["id"])
    return out


def retry(store: Store, job: Job) -> list[str]:
    """Queue an Error / Canceled job again, with every descendant that failed because of it;
    returns the ids queued (the job first). Its folder is kept: a train job resumes."""
    with store.write() as conn:
        row = store.get(conn, job.id)
        if row["status"] not in FAILED:
            raise JobStateError(f"job {job.label} is {row['status']}; only Error or Canceled jobs can be retried")
        if row["parent_id"]:
            parent = store.get(conn, row["parent_id"])
            if parent["status"] in FAILED:
                raise JobStateError(f"job {job.label} waits for parent job {Job.from_row(parent).label}, which ended "
                                    f"{parent['status']}: retry the parent (that queues this job again too)")
        queued = []
        now = time.time()
        for target in [row, *_descendants_failed_by(store, conn, job.id)]:
            values = {**_CLEARED_RUN, "status": PENDING, "failed_parent": None, "cancel_requested": False,
                      "queued_at": now, "finished_at": None}
            if store.update_job(conn, target["id"], values, status=target["status"]):
                note = "retry requested" if target is row else f"queued again with its ancestor {job.short_id}"
                store.add_event(conn, target["id"], PENDING, note, now)
                queued.append(target["id"])
        return queued

