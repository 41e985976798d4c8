"""``mask_grounding_dino jobs`` with bad input: one line, exit code 2, no job row written; and
several command-line processes creating jobs in one workspace at the same moment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine_helpers import cli_env
from mask_grounding_dino.cli import main
from mask_grounding_dino.jobs import CANCELED, DONE, ERROR, Workspace


def _cli(workspace, *args) -> subprocess.CompletedProcess:
    """The command line's entry point, in this process (bad input starts no process)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["jobs", "--workspace", str(workspace), *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws", start_runner=False)
    export = ws.create_job("export", spec_overrides={"export.checkpoint": "/m.pth"}, start=False, name="exp")
    ws.create_job("gen_trt_engine", parent_job_id=export.id, start=False, name="engine")
    return ws


def _spec(tmp_path, text="train:\n  num_epochs: 2\n"):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("args,message", [
    (("create", "trian"), "error: unknown action 'trian'; did you mean train?"),
    (("create", "export", "--parent", "deadbeef"), "error: unknown parent job 'deadbeef' in "),
    (("create", "quantize", "--parent", "engine"), "error: parent job "),
    (("create", "train", "train.num_epochs=abc"), "error: override 'train.num_epochs=abc': "),
    (("create", "train", "train.num_epoch=3"), "error: override 'train.num_epoch=3': "),
    (("create", "evaluate"), "error: evaluate.checkpoint: required for evaluate without a parent job"),
    (("show", "0000"), "error: unknown job '0000' in "),
    (("retry", "exp"), "error: job "),
    (("list", "--status", "Finished"), "error: unknown job status 'Finished'"),
    (("frobnicate",), "error: unknown jobs command 'frobnicate'"),
], ids=["unknown-action", "unknown-parent", "wrong-parent-kind", "bad-override-value", "unknown-key",
        "no-model", "unknown-job", "retry-pending", "bad-status", "unknown-command"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(ws, args, message):
    before = [j.to_dict() for j in ws.list_jobs()]
    out = _cli(ws.path, *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert [j.to_dict() for j in ws.list_jobs()] == before
    assert ws.store.integrity_problems() == []


def test_wrong_parent_kind_names_what_is_allowed(ws):
    out = _cli(ws.path, "create", "quantize", "--parent", "engine")
    assert "ran gen_trt_engine; quantize jobs take their model from train or export jobs" in out.stderr


def test_a_spec_file_error_names_the_file_and_line(ws, tmp_path):
    spec = _spec(tmp_path, "train:\n  num_epochs: 2\n  optim:\n    lrr: 0.1\n")
    out = _cli(ws.path, "create", "train", "-e", spec)
    assert out.returncode == 2 and f"{spec}:4:" in out.stderr and "lrr" in out.stderr
    assert ws.count() == 2


def test_a_done_job_cannot_be_retried_nor_canceled(ws):
    job = ws.get_job("exp", settle=False)
    with ws.store.write() as conn:
        ws.store.update_job(conn, job.id, {"status": DONE})
    for command in ("retry", "cancel"):
        out = _cli(ws.path, command, job.short_id)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Done" in out.stderr


def test_processes_creating_jobs_at_once_all_get_their_row(tmp_path):
    """Four command-line processes create a job each in one new workspace at the same moment
    (their parent is canceled, so the runner they start fails them at once instead of running them)."""
    ws = Workspace(tmp_path / "ws", start_runner=False)
    parent = ws.create_job("export", spec_overrides={"export.checkpoint": "/m.pth"}, start=False)
    ws.cancel(parent.id)
    spec = _spec(tmp_path, "dataset:\n  batch_size: 1\n")
    procs = [subprocess.Popen([sys.executable, "-m", "mask_grounding_dino", "jobs", "create", "evaluate", "-e", spec,
                               "--parent", parent.id, "--name", f"c{i}", "--workspace", ws.path],
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    ids = [out.strip() for out, _ in outputs]
    jobs = ws.wait(ids, timeout=120)
    assert len(set(ids)) == 4 and sorted(j.name for j in jobs) == ["c0", "c1", "c2", "c3"]
    assert all(j.status == ERROR and j.failed_parent == parent.id and "ended Canceled" in j.reason for j in jobs)
    assert ws.get_job(parent.id).status == CANCELED and ws.count() == 5
    assert ws.store.integrity_problems() == []
