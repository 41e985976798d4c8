"""The workspace API without running anything: where it lives, chain structure, lookups, settings."""

from __future__ import annotations

import os

import pytest

from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.jobs import PENDING, JobError, UnknownJobError, Workspace
from mask_grounding_dino.jobs.settings import WORKSPACE_ENV


def test_the_default_workspace_is_the_env_var_else_mgd_jobs_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    assert Workspace(start_runner=False).path == str(tmp_path / "mgd_jobs")
    assert (tmp_path / "mgd_jobs" / "jobs.db").is_file() and (tmp_path / "mgd_jobs" / "results").is_dir()
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "elsewhere"))
    assert Workspace(start_runner=False).path == str(tmp_path / "elsewhere")
    with Workspace(start_runner=False).store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_chain_is_four_linked_jobs_from_one_spec(tmp_path):
    ws = Workspace(tmp_path, start_runner=False)
    jobs = ws.chain(spec_overrides={"train.num_epochs": 3}, name="x", start=False)
    train, export, evaluate, inference = (jobs[a] for a in ("train", "export", "evaluate", "inference"))
    assert [j.status for j in jobs.values()] == [PENDING] * 4
    assert (train.parent_id, export.parent_id, evaluate.parent_id, inference.parent_id) == \
        (None, train.id, export.id, export.id)
    assert {j.spec_overrides["train.num_epochs"] for j in jobs.values()} == {3}
    assert [j.name for j in jobs.values()] == ["x-train", "x-export", "x-evaluate", "x-inference"]
    assert train.automl_policy == "auto" and export.automl_policy is None


def test_a_bad_chain_writes_nothing(tmp_path):
    ws = Workspace(tmp_path, start_runner=False)
    with pytest.raises(SpecError, match="train.num_epochs"):
        ws.chain(spec_overrides=["train.num_epochs=-1"], start=False)
    assert ws.count() == 0


def test_jobs_are_found_by_id_prefix_or_name(tmp_path):
    ws = Workspace(tmp_path, start_runner=False)
    job = ws.create_job("train", name="mine", start=False)
    assert ws.get_job(job.id[:6]).id == ws.get_job("mine").id == job.id
    ws.create_job("train", name="mine", start=False)
    with pytest.raises(UnknownJobError, match="ambiguous"):
        ws.get_job("mine")


def test_the_spec_is_stored_as_given_not_as_the_file_is_later(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("train:\n  num_epochs: 4\n")
    ws = Workspace(tmp_path / "ws", start_runner=False)
    job = ws.create_job("train", spec, ["dataset.batch_size=2"], start=False)
    spec.write_text("train:\n  num_epochs: 99\n")
    stored = ws.get_job(job.id)
    assert stored.spec_data == {"train": {"num_epochs": 4}} and stored.spec_overrides == {"dataset.batch_size": 2}
    assert stored.workdir == os.getcwd() and stored.spec_file == str(spec)


def test_max_concurrent_is_a_workspace_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU machine, even where GPUs are present
    ws = Workspace(tmp_path, start_runner=False)
    assert ws.max_concurrent == 1
    ws.set_max_concurrent(3)
    assert Workspace(tmp_path, start_runner=False).max_concurrent == 3
    with pytest.raises(JobError, match="at least 1"):
        ws.set_max_concurrent(0)
