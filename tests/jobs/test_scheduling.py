"""Scheduling with real jobs: two running at once under ``max_concurrent`` 2, a third waiting;
cancel of a Pending job (it never starts) and of a Running one (its process group is stopped);
a child whose parent fails gets the parent's reason."""

from __future__ import annotations

import os
import time

import pytest

from jobs_helpers import JOB_TIMEOUT
from mask_grounding_dino.cli import main
from mask_grounding_dino.jobs import CANCELED, DONE, ERROR, PENDING, RUNNING, Workspace
from mask_grounding_dino.jobs import processes

pytestmark = pytest.mark.slow


def _until(predicate, what: str, timeout: float = JOB_TIMEOUT, poll: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_at_once_a_third_waits_and_cancels_stop_them(chain_run, chain_assets, tmp_path, job_env):
    onnx = chain_run.jobs["export"].outputs["model"]
    ws = Workspace(tmp_path / "ws")
    ws.set_max_concurrent(2)
    spec = chain_assets.spec_file
    a = ws.create_job("evaluate", spec, {"evaluate.checkpoint": onnx}, name="a", start=False)
    b = ws.create_job("inference", spec, {"inference.checkpoint": onnx}, name="b", start=False)
    c = ws.create_job("evaluate", spec, {"evaluate.checkpoint": onnx}, name="c", start=False)
    ws.start_runner()

    def both_running():
        jobs = [ws.get_job(j.id, settle=False) for j in (a, b)]
        return jobs if all(j.status == RUNNING and j.process_pid for j in jobs) else None

    a_now, b_now = _until(both_running, "a and b to run at once")
    assert ws.get_job(c.id).status == PENDING  # the limit holds it back

    canceled = ws.cancel(c.id)
    assert (canceled.status, canceled.attempts, canceled.reason) == (CANCELED, 0, "canceled by user")
    assert not os.path.exists(canceled.log_path)  # it never started

    stopped = ws.cancel(b.id, grace=5)
    assert stopped.status == CANCELED and stopped.reason == "canceled by user"
    assert not processes.group_exists(b_now.process_pid)
    assert "cancel requested" in [e["message"] for e in ws.events(b.id)]

    followed = "".join(ws.logs(a.id, follow_=True))  # returns once the job ended
    done = ws.get_job(a.id)
    assert done.status == DONE, done.reason
    assert followed == open(done.log_path, encoding="utf-8", newline="").read()  # every byte, \r included
    assert "Evaluation of model.onnx" in followed
    # They overlapped: each started before the other ended.
    assert done.started_at < stopped.finished_at and stopped.started_at < done.finished_at
    assert ws.get_job(c.id).status == CANCELED  # still: a canceled job never starts


def test_a_child_of_a_failed_parent_fails_with_the_parents_reason(chain_assets, tmp_path, job_env):
    ws = Workspace(tmp_path / "ws")
    parent = ws.create_job("export", chain_assets.spec_file, {"export.checkpoint": str(tmp_path / "missing.pth")})
    child = ws.create_job("evaluate", chain_assets.spec_file, parent_job_id=parent.id)
    failed_parent, failed_child = ws.wait([parent.id, child.id], timeout=JOB_TIMEOUT)
    assert failed_parent.status == ERROR and failed_parent.reason.startswith("exit code 2: ")
    assert "missing.pth" in failed_parent.reason
    assert failed_child.status == ERROR and failed_child.attempts == 0 and failed_child.failed_parent == parent.id
    assert failed_child.reason == f"parent job {failed_parent.label} ended Error: {failed_parent.reason}"
    assert main(["jobs", "--workspace", ws.path, "wait", child.short_id]) == 1  # not Done: exit 1
