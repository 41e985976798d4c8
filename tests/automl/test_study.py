"""Whole studies through the public command: real trial processes (train jobs), a real Optuna
storage (SQLite), the files a study leaves, failures, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from engine_helpers import cli_env

from mask_grounding_dino.config import load_spec

pytestmark = pytest.mark.slow


def _automl(spec, *pairs, timeout=900):
    return subprocess.run([sys.executable, "-m", "mask_grounding_dino", "automl", "-e", str(spec), *pairs],
                          env=cli_env(), capture_output=True, text=True, timeout=timeout, cwd=str(spec.parent))


def _report(spec) -> dict:
    return json.loads((spec.parent / "run" / "automl" / "report.json").read_text())


def test_asha_study_runs_its_trials_as_jobs_and_reports_the_winner(automl_spec):
    out = _automl(automl_spec, "automl_algorithm=asha", "automl_max_recommendations=3", "automl_max_epochs=2",
                  "automl_max_concurrent=2")
    assert out.returncode == 0, out.stderr[-3000:]
    folder = automl_spec.parent / "run" / "automl"
    report = _report(automl_spec)
    assert report["counts"]["COMPLETE"] + report["counts"]["PRUNED"] == 3
    assert report["counts"]["FAIL"] == 0
    # One progress line per trial start and end, and an overall line.
    text = out.stdout + out.stderr
    for n in range(3):
        assert f"AutoML: trial {n} start" in text and f"AutoML: trial {n} " in text
    assert "AutoML: 3/3 trials done" in text
    # Each trial is a job of the jobs package, run through the CLI, in its own folder.
    from mask_grounding_dino.jobs import Workspace

    jobs = Workspace(folder / "jobs", start_runner=False).list_jobs()
    assert len(jobs) == 3 and all(j.action == "train" and j.automl_policy == "off" for j in jobs)
    controller = json.loads((folder / "controller.json").read_text())
    assert sorted(r["job_id"] for r in controller) == sorted(j.id for j in jobs)
    for n in range(3):
        rec = yaml.safe_load((folder / f"recommendation_{n}.yaml").read_text())
        assert set(rec) == set(report["search_space"])
    best = report["best"]
    values = [r["value"] for r in controller if r["status"] == "COMPLETE"]
    assert best["value"] == max(values)
    assert os.path.isfile(best["checkpoint"])
    # best_spec.yaml is the winner's full spec, loadable as is, training anew in the study's results_dir.
    cfg = load_spec(best["spec"])
    for key, value in best["params"].items():
        section, *rest = key.split(".")
        node = getattr(cfg, section)
        for part in rest:
            node = getattr(node, part)
        assert node == pytest.approx(value), key
    assert cfg.train.results_dir in ("", None) and cfg.results_dir == str(automl_spec.parent / "run")
    for name in ("optimization_history", "parallel_coordinate", "param_importances", "intermediate_values"):
        assert (folder / "plots" / f"{name}.png").is_file() or name in ("param_importances",)
    assert "## Best trial" in (folder / "report.md").read_text()


def test_trials_without_the_metric_fail_and_three_in_a_row_stop_the_study(automl_spec):
    # A referring metric: validation on detection (OD) data never records it.
    out = _automl(automl_spec, "metric=val_mIoU", "automl_max_recommendations=5",
                  "automl_max_concurrent=3", "automl_algorithm=bayesian")
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3 trials failed in a row" in errors[0]
    report = _report(automl_spec)
    # The streak stops new trials; the ones in flight then (at most max_concurrent - 1) finish too.
    assert 3 <= report["counts"]["FAIL"] <= 5 and report["counts"]["COMPLETE"] == 0 and report["best"] is None
    assert all(r["value"] is None and "without recording" in r["reason"] for r in report["trials"])


def test_kill_9_of_the_controller_then_rerun_continues_the_same_study(automl_spec):
    pairs = ("automl_algorithm=bayesian", "automl_max_recommendations=3", "automl_max_concurrent=1")
    folder = automl_spec.parent / "run" / "automl"
    controller = subprocess.Popen([sys.executable, "-m", "mask_grounding_dino", "automl", "-e", str(automl_spec),
                                   *pairs], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, cwd=str(automl_spec.parent))
    from mask_grounding_dino.jobs import Workspace

    deadline = time.time() + 600
    # Kill it while its second trial trains: one trial finished, the second one's job started.
    while time.time() < deadline:
        path = folder / "controller.json"
        rows = json.loads(path.read_text()) if path.is_file() else []
        jobs_db = folder / "jobs" / "jobs.db"
        started = len(Workspace(folder / "jobs", start_runner=False).list_jobs()) if jobs_db.is_file() else 0
        if any(r["status"] == "COMPLETE" for r in rows) and started >= 2:
            break
        time.sleep(0.5)
    else:
        controller.kill()
        pytest.fail("the first trial did not finish in time")
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait()
    out = _automl(automl_spec, *pairs)
    assert out.returncode == 0, out.stderr[-3000:]
    report = _report(automl_spec)
    assert report["counts"]["COMPLETE"] == 3
    rows = report["trials"]
    retried = [r for r in rows if r["retry_of"] is not None]
    assert len(retried) == 1 and retried[0]["retry_of"] == 1  # the trial in flight, repeated once
    assert [r["status"] for r in rows if r["id"] == 1] == ["FAIL"]
    # No trial counted twice: the repeat took the dead trial's job over, no job was started twice.
    jobs = Workspace(folder / "jobs", start_runner=False).list_jobs()
    assert len(jobs) == 3
    assert retried[0]["job_id"] == next(r["job_id"] for r in rows if r["id"] == 1)


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb"])
def test_hyperband_and_bohb_finish_their_budget(automl_spec, algorithm):
    out = _automl(automl_spec, f"automl_algorithm={algorithm}", "automl_max_recommendations=3",
                  "automl_max_epochs=2", "automl_max_concurrent=3")
    assert out.returncode == 0, out.stderr[-3000:]
    report = _report(automl_spec)
    assert report["counts"]["COMPLETE"] + report["counts"]["PRUNED"] == 3 and report["counts"]["FAIL"] == 0
    assert report["algorithm"] == algorithm and report["best"] is not None
    # No trial trains past the budget; a pruned one stopped at a rung (epoch 1 of 2).
    assert all(r["epochs_trained"] <= 2 for r in report["trials"])
    assert all(r["epochs_reported"] == 1 for r in report["trials"] if r["status"] == "PRUNED")


def test_pbt_members_resume_from_checkpoints_and_the_bottom_one_exploits(automl_spec):
    out = _automl(automl_spec, "automl_algorithm=pbt", "automl_population_size=2", "automl_max_generations=2",
                  "automl_eval_interval=1", "automl_max_concurrent=2")
    assert out.returncode == 0, out.stderr[-3000:]
    report = _report(automl_spec)
    rows = {r["id"]: r for r in report["trials"]}
    assert report["counts"]["COMPLETE"] == 4 and [rows[i]["generation"] for i in range(4)] == [0, 0, 1, 1]
    from mask_grounding_dino.jobs import Workspace

    folder = automl_spec.parent / "run" / "automl"
    jobs = {j.id: j for j in Workspace(folder / "jobs", start_runner=False).list_jobs()}
    for n in (2, 3):  # generation 1 resumed (never restarted) from its member's copied checkpoint
        log = open(jobs[rows[n]["job_id"]].log_path).read()
        assert f"resuming in" in log and f"pbt/generation_1_member_{rows[n]['member']}.pth" in log
        assert rows[n]["epochs_trained"] == 2
    text = out.stdout + out.stderr
    exploited = [line for line in text.splitlines() if "exploits trial" in line]
    assert len(exploited) == 1  # the bottom 20% of 2 members: one
