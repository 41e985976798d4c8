"""The runner killed with SIGKILL at random moments, over and over, while it launches jobs and
fails the children of a canceled one: after every kill the database is sound and consistent,
and in the end every job ran at most once and ended with its real outcome."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from jobs_helpers import JOB_TIMEOUT
from mask_grounding_dino.jobs import CANCELED, ERROR, PENDING, RUNNING, STATUSES, Workspace
from mask_grounding_dino.jobs.status import TERMINAL
from mask_grounding_dino.jobs import lifecycle, processes
from mask_grounding_dino.jobs.job import Job

pytestmark = pytest.mark.slow


def _check(ws: Workspace, count: int) -> None:
    assert ws.store.integrity_problems() == []
    jobs = _all(ws)
    assert len(jobs) == count
    for job in jobs:
        assert job.status in STATUSES
        if job.status == RUNNING:
            assert job.started_at and job.claimer_pid and job.attempts >= 1
        if job.status == PENDING:
            assert job.started_at is None and job.finished_at is None
        if job.status in TERMINAL:
            assert job.finished_at and job.reason, job
        assert job.attempts <= 1, "a job was launched twice"


def _all(ws: Workspace) -> list[Job]:
    """Every row as stored (no settling: the check must see what the kill left)."""
    with ws.store.read() as conn:
        return [Job.from_row(r) for r in ws.store.select_jobs(conn)]


def test_killing_the_runner_at_any_moment_leaves_a_consistent_database(chain_assets, tmp_path, job_env):
    ws = Workspace(tmp_path / "ws", start_runner=False)
    ws.set_max_concurrent(2)
    spec = chain_assets.spec_file
    # Real jobs that fail fast in their action (a model file that does not exist) ...
    quick = [ws.create_job("export", spec, {"export.checkpoint": str(tmp_path / f"missing{i}.pth")}, start=False)
             for i in range(3)]
    kids = [ws.create_job("evaluate", spec, parent_job_id=q.id, start=False) for q in quick]
    # ... and a two-level tree under a canceled root, failed by the runner without running anything.
    root = ws.create_job("export", spec, {"export.checkpoint": "/m.pth"}, start=False)
    ws.cancel(root.id)
    engines = [ws.create_job("gen_trt_engine", spec, parent_job_id=root.id, start=False) for _ in range(8)]
    tree = engines + [ws.create_job("evaluate", spec, parent_job_id=e.id, start=False) for e in engines]
    count = 1 + len(quick) + len(kids) + len(tree)

    rng = random.Random(0)
    argv = [sys.executable, "-m", "mask_grounding_dino.jobs.runner", "--workspace", ws.path]
    kills = 0
    deadline = time.time() + JOB_TIMEOUT
    while kills < 25 and time.time() < deadline:
        runner = subprocess.Popen(argv, env=processes.child_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 1.5))  # before, during or after its imports, claims, launches
        runner.kill()
        runner.wait()
        kills += 1
        _check(ws, count)
        lifecycle.reap(ws.store)  # the next look
        _check(ws, count)

    ws.start_runner()
    jobs = {j.id: j for j in ws.wait([j.id for j in _all(ws)], timeout=JOB_TIMEOUT)}
    _check(ws, count)
    for job in quick:
        ended = jobs[job.id]
        assert ended.status == ERROR and ended.attempts == 1 and "does not exist" in ended.reason, ended.reason
        assert open(ended.log_path, encoding="utf-8").read().count(" attempt 1 on ") == 1
    assert all(jobs[k.id].status == ERROR and jobs[k.id].failed_parent == p.id for k, p in zip(kids, quick))
    assert all(jobs[j.id].status == ERROR and jobs[j.id].attempts == 0 for j in tree)
    assert jobs[root.id].status == CANCELED
    requeued = sum(e["message"].startswith("the runner that claimed it stopped")
                   for j in jobs for e in ws.events(j))
    print(f"{kills} runner kills; {requeued} claims undone because the kill fell between a claim and its "
          "supervisor's start")
