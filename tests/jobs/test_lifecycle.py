"""Status transitions on a real SQLite database, with real processes standing in as the
runner, the supervisor and the action (``sleep`` processes: their liveness is what counts)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mask_grounding_dino.jobs import CANCELED, DONE, ERROR, PENDING, RUNNING, JobStateError, Workspace
from mask_grounding_dino.jobs import lifecycle, processes

EVAL = {"evaluate.checkpoint": "/models/m.onnx"}


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws", start_runner=False)


def _job(ws, action="evaluate", parent=None, spec_overrides=None, **kw):
    """A job that no runner picks up (start=False): the test moves it through its states."""
    if spec_overrides is None and action == "evaluate" and parent is None:
        spec_overrides = EVAL
    return ws.create_job(action, spec_overrides=spec_overrides, parent_job_id=parent, start=False, **kw)


def _claim(ws, limit=1, me=None):
    with ws.store.write() as conn:
        return lifecycle.claim_ready(ws.store, conn, limit, me or processes.identify())


def _sleeper(new_session=False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=new_session)


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _status(ws, job):
    return ws.get_job(job.id, settle=False)


def test_claims_respect_the_limit_the_order_and_the_parents(ws):
    first, second = _job(ws), _job(ws)
    export = _job(ws, "export", spec_overrides={"export.checkpoint": "/m.pth"})
    child = _job(ws, "evaluate", parent=export.id)
    assert [j.id for j in _claim(ws, limit=2)] == [first.id, second.id]
    assert _claim(ws, limit=2) == []  # two running already
    assert [j.id for j in _claim(ws, limit=3)] == [export.id]  # the child waits for its parent
    with ws.store.write() as conn:
        ws.store.update_job(conn, export.id, {"status": DONE}, status=RUNNING)
    assert [j.id for j in _claim(ws, limit=4)] == [child.id]
    job = _status(ws, child)
    assert (job.status, job.attempts, job.claimer_pid) == (RUNNING, 1, processes.identify().pid)


def test_children_of_a_failed_parent_fail_down_the_tree_with_the_reason(ws):
    root = _job(ws, "export", spec_overrides={"export.checkpoint": "/m.pth"}, name="root")
    child = _job(ws, "evaluate", parent=root.id)
    grandchild_parent = _job(ws, "gen_trt_engine", parent=root.id)
    grandchild = _job(ws, "inference", parent=grandchild_parent.id)
    with ws.store.write() as conn:
        ws.store.update_job(conn, root.id, {"status": ERROR, "reason": "exit code 2: export.checkpoint missing"})
        assert set(lifecycle.fail_blocked(ws.store, conn)) == {child.id, grandchild_parent.id, grandchild.id}
    failed = _status(ws, grandchild)
    assert failed.status == ERROR and failed.failed_parent == grandchild_parent.id
    assert failed.reason.startswith(f"parent job {grandchild_parent.short_id} (gen_trt_engine) ended Error: parent job "
                                    f"{root.short_id} (export, root) ended Error: exit code 2")


def test_retry_queues_the_job_and_what_failed_because_of_it(ws):
    root = _job(ws, "export", spec_overrides={"export.checkpoint": "/m.pth"})
    child = _job(ws, "evaluate", parent=root.id)
    other = _job(ws)  # unrelated Error: stays
    with ws.store.write() as conn:
        ws.store.update_job(conn, root.id, {"status": CANCELED, "reason": "canceled by user"})
        ws.store.update_job(conn, other.id, {"status": ERROR, "reason": "boom"})
        lifecycle.fail_blocked(ws.store, conn)
    with pytest.raises(JobStateError, match="retry the parent"):
        lifecycle.retry(ws.store, _status(ws, child))
    assert lifecycle.retry(ws.store, _status(ws, root)) == [root.id, child.id]
    assert [_status(ws, j).status for j in (root, child, other)] == [PENDING, PENDING, ERROR]
    assert _status(ws, child).reason is None and _status(ws, child).failed_parent is None
    with pytest.raises(JobStateError, match="only Error or Canceled"):
        lifecycle.retry(ws.store, _status(ws, root))


def test_cancel_pending_running_and_ended(ws):
    running, pending, done = _job(ws), _job(ws), _job(ws)
    assert [j.id for j in _claim(ws)] == [running.id]  # the oldest
    assert lifecycle.cancel(ws.store, pending) == "canceled"
    assert _status(ws, pending).status == CANCELED and _status(ws, pending).attempts == 0
    assert lifecycle.cancel(ws.store, running) == "requested"
    assert _status(ws, running).cancel_requested and _status(ws, running).status == RUNNING
    assert lifecycle.cancel(ws.store, pending) == "already"
    with ws.store.write() as conn:
        ws.store.update_job(conn, done.id, {"status": DONE})
    with pytest.raises(JobStateError, match="already ended Done"):
        lifecycle.cancel(ws.store, _status(ws, done))


def test_a_dead_supervisor_makes_the_job_error_and_its_processes_are_stopped(ws):
    job = _job(ws)
    _claim(ws)
    supervisor, action = _sleeper(), _sleeper(new_session=True)
    try:
        assert lifecycle.register(ws.store, job.id, 1, "supervisor", processes.identify(supervisor.pid))
        assert not lifecycle.register(ws.store, job.id, 1, "supervisor", processes.identify())  # only once
        assert lifecycle.register(ws.store, job.id, 1, "process", processes.identify(action.pid))
        assert lifecycle.reap(ws.store) == [] and _status(ws, job).status == RUNNING
        _kill(supervisor)  # kill -9 of the supervisor alone: the action keeps running ...
        assert lifecycle.reap(ws.store) == [job.id]
        action.wait(timeout=10)  # ... until the reaper stops its process group
        assert action.returncode == -9
        ended = _status(ws, job)
        assert ended.status == ERROR and "supervisor" in ended.reason and "gone" in ended.reason
        assert ended.finished_at and ended.run_seconds >= 0
    finally:
        for proc in (supervisor, action):
            if proc.poll() is None:
                _kill(proc)


def test_a_dead_supervisor_of_a_canceled_job_makes_it_canceled(ws):
    job = _job(ws)
    _claim(ws)
    supervisor = _sleeper()
    lifecycle.register(ws.store, job.id, 1, "supervisor", processes.identify(supervisor.pid))
    lifecycle.cancel(ws.store, _status(ws, job))
    _kill(supervisor)
    lifecycle.reap(ws.store)
    assert _status(ws, job).status == CANCELED


def test_a_runner_killed_between_claim_and_launch_leaves_the_job_queued(ws):
    job = _job(ws)
    runner = _sleeper()
    _claim(ws, me=processes.identify(runner.pid))
    assert lifecycle.reap(ws.store) == []  # runner alive: the launch is under way
    _kill(runner)
    assert lifecycle.reap(ws.store) == [job.id]
    queued = _status(ws, job)
    assert (queued.status, queued.attempts, queued.started_at) == (PENDING, 0, None)
    # A supervisor that starts late for the abandoned attempt does not run it.
    assert not lifecycle.register(ws.store, job.id, 1, "supervisor", processes.identify())


def test_heartbeat_reports_cancel_and_a_settled_attempt(ws):
    job = _job(ws)
    _claim(ws)
    assert lifecycle.heartbeat(ws.store, job.id, 1) is False
    before = _status(ws, job).heartbeat_at
    time.sleep(0.01)
    lifecycle.cancel(ws.store, _status(ws, job))
    assert lifecycle.heartbeat(ws.store, job.id, 1) is True
    assert _status(ws, job).heartbeat_at > before
    assert lifecycle.heartbeat(ws.store, job.id, 2) is None  # not that attempt


def _register_as(ws, job, ident: processes.ProcessId) -> None:
    """Record ``ident`` as the job's claimer and supervisor (a process seen from this machine)."""
    with ws.store.write() as conn:
        ws.store.update_job(conn, job.id, {"host": ident.host, "boot_id": ident.boot_id, "claimer_pid": ident.pid,
                                           "claimer_start": ident.start})
    assert lifecycle.register(ws.store, job.id, 1, "supervisor", ident)


@pytest.mark.skipif(not processes.boot_id(), reason="this system reports no boot id")
def test_a_job_running_before_a_reboot_is_error_with_that_reason(ws):
    job = _job(ws)
    _claim(ws)
    me = processes.identify()  # a live pid: only the boot id says it is not the same process
    _register_as(ws, job, processes.ProcessId(me.host, "an-earlier-boot", me.pid, me.start))
    assert lifecycle.reap(ws.store) == [job.id]
    ended = _status(ws, job)
    assert (ended.status, ended.reason) == (ERROR, "the machine restarted while the job ran")


def test_a_job_on_another_host_is_judged_by_its_heartbeat(ws):
    job = _job(ws)
    _claim(ws)
    _register_as(ws, job, processes.ProcessId("another-host", "", 4242, "1"))
    assert lifecycle.reap(ws.store) == [] and _status(ws, job).status == RUNNING  # it beat just now
    quiet = lifecycle.STALE_AFTER_S + 5
    with ws.store.write() as conn:
        ws.store.update_job(conn, job.id, {"heartbeat_at": time.time() - quiet})
    assert lifecycle.reap(ws.store) == [job.id]
    ended = _status(ws, job)
    assert ended.status == ERROR and ended.reason.startswith("no heartbeat from another-host for "), ended.reason
