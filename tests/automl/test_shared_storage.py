"""Two worker processes (as on two machines: each its own folder and jobs) join one study on a
real PostgreSQL server, and an AutoML train job of the jobs package runs a study to its best
checkpoint."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from engine_helpers import cli_env
from postgres_server import postgres_server, unavailable

from mask_grounding_dino.jobs import Workspace

pytestmark = pytest.mark.slow


def test_two_workers_share_one_postgresql_study(automl_spec, tmp_path):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        workers = [subprocess.Popen([sys.executable, "-m", "mask_grounding_dino", "automl", "-e", str(automl_spec),
                                     f"results_dir={tmp_path / f'worker{i}'}", f"storage={url}",
                                     "automl_algorithm=bayesian", "automl_max_recommendations=2",
                                     "automl_max_concurrent=1"], env=cli_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
                   for i in range(2)]
        errors = [w.communicate(timeout=900)[1] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [e[-2000:] for e in errors]
        study = optuna.load_study(study_name="automl", storage=url)
        trials = study.get_trials()
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # Each worker trained one trial in its own jobs workspace: the budget was shared, not doubled.
    per_worker = [Workspace(tmp_path / f"worker{i}" / "automl" / "jobs", start_runner=False).list_jobs()
                  for i in range(2)]
    assert [len(jobs) for jobs in per_worker] == [1, 1]
    assert {t.user_attrs["job_id"] for t in trials} == {jobs[0].id for jobs in per_worker}


def test_an_automl_train_job_passes_on_its_best_trials_checkpoint(automl_spec, tmp_path, monkeypatch):
    from jobs_helpers import job_environment

    with job_environment():
        ws = Workspace(tmp_path / "ws")
        job = ws.create_job("train", automl_spec, automl_policy="on",
                            automl_settings={"automl_algorithm": "asha", "automl_max_recommendations": 2,
                                             "automl_max_epochs": 1, "automl_max_concurrent": 2})
        done = ws.wait([job.id], timeout=900)[0]
    assert done.status == "Done", done.reason
    assert done.outputs["model"].startswith(str(tmp_path / "ws" / "results" / job.id / "automl" / "jobs"))
    assert done.outputs["best_spec"].endswith("best_spec.yaml") and done.metrics["trials_complete"] == 2
    log = open(done.log_path).read()
    assert "automl -e" in log and "AutoML: 2/2 trials done" in log
