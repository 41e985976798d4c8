"""A train job killed with SIGKILL, twice, becomes Error with the reason each time, and
``retry`` resumes it from its own latest checkpoint to weights bit-identical to the
uninterrupted run of the same spec (the chain's train job).

Kill 1: the action's process alone (an out-of-memory kill): its supervisor records it.
Kill 2: the supervisor and the action's process group together (a power cut, a reboot):
nothing records it, and the next look at the workspace finds the job dead."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine_helpers import model_weights, weights_digest
from jobs_helpers import JOB_TIMEOUT
from mask_grounding_dino.jobs import DONE, ERROR, RUNNING, Workspace
from mask_grounding_dino.jobs.artifacts import LATEST_LINK, checkpoints, train_folder

pytestmark = pytest.mark.slow


def _wait_for_step(ws: Workspace, job_id: str, attempt: int, step: int) -> object:
    """The job once its ``attempt`` runs with its action registered and a checkpoint at or
    after ``step`` exists (polled often: a tiny step takes about a second)."""
    deadline = time.time() + JOB_TIMEOUT
    while time.time() < deadline:
        job = ws.get_job(job_id, settle=False)
        assert job.status in (RUNNING, "Pending"), (job.status, job.reason)
        folder = train_folder(job.results_dir)
        steps = [s for s, _, _ in checkpoints(folder)] if folder else []
        if job.attempts == attempt and job.process_pid and steps and max(steps) >= step:
            assert max(steps) < 8, "the run ended before the kill"
            return job
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} in time")


def test_kill_9_then_retry_ends_with_the_uninterrupted_weights(chain_run, chain_assets, tmp_path, job_env):
    reference = chain_run.jobs["train"]
    ws = Workspace(tmp_path / "ws")
    job = ws.create_job("train", chain_assets.spec_file, automl_policy="off")

    running = _wait_for_step(ws, job.id, attempt=1, step=3)
    os.kill(running.process_pid, signal.SIGKILL)
    failed = ws.wait([job.id], timeout=JOB_TIMEOUT)[0]
    assert failed.status == ERROR and failed.reason.startswith("killed by SIGKILL"), failed.reason
    assert failed.exit_code == -signal.SIGKILL
    first_kill = max(s for s, _, _ in checkpoints(train_folder(failed.results_dir)))

    assert [j.id for j in ws.retry(job.id)] == [job.id]
    running = _wait_for_step(ws, job.id, attempt=2, step=first_kill + 2)
    os.kill(running.supervisor_pid, signal.SIGKILL)
    os.killpg(running.process_pid, signal.SIGKILL)
    time.sleep(0.5)  # let the kernel finish the kill; the supervisor's parent reaps it
    died = ws.get_job(job.id)  # a look settles the dead job
    assert died.status == ERROR and "supervisor" in died.reason and "gone" in died.reason, died.reason
    second_kill = max(s for s, _, _ in checkpoints(train_folder(died.results_dir)))

    ws.retry(job.id)
    done = ws.wait([job.id], timeout=JOB_TIMEOUT)[0]
    assert done.status == DONE and done.attempts == 3, done.reason
    resumed = {r["key"]: r["value"] for r in done.filled}["train.resume_training_checkpoint_path"]
    assert os.path.basename(resumed) == f"model_epoch_001_step_{second_kill:05d}.pth"
    log = open(done.log_path, encoding="utf-8").read()
    assert log.count("train: resuming in") == 2 and "attempt 3 on" in log

    mine, theirs = train_folder(done.results_dir), reference.outputs["folder"]
    names = [os.path.basename(p) for _, _, p in checkpoints(mine)]
    assert names == [os.path.basename(p) for _, _, p in checkpoints(theirs)]
    digests = {name: (weights_digest(model_weights(os.path.join(mine, name))),
                      weights_digest(model_weights(os.path.join(theirs, name)))) for name in names}
    assert all(a == b for a, b in digests.values()), digests
    final = weights_digest(model_weights(os.path.join(mine, LATEST_LINK)))
    assert final == weights_digest(model_weights(os.path.join(theirs, LATEST_LINK)))
    print(f"killed after step {first_kill} (action only) and {second_kill} (supervisor + group); "
          f"final weights sha256 {final} in both runs")
