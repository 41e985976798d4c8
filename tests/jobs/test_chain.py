"""The four-job chain on the tiny preset: train -> export -> evaluate (of the ONNX file) and
inference, created by ``jobs chain`` from one spec that names no results folder and no model,
runs to Done with every path filled by spec-parameter inference; the chain's evaluate scores
exactly what a direct ``evaluate`` of the same ONNX file scores."""

from __future__ import annotations

import json
import os

import pytest

from engine_helpers import cli_env, run_cli
from jobs_helpers import JOB_ENV
from mask_grounding_dino.config import get_value, is_unset, load_spec
from mask_grounding_dino.jobs import DONE
from mask_grounding_dino.jobs.artifacts import MONITOR, checkpoints, validation_records

pytestmark = pytest.mark.slow


def _filled(job) -> dict:
    return {r["key"]: r["value"] for r in job.filled if r["value"] is not None}


def test_the_spec_names_no_result_folder_and_no_model(chain_assets):
    cfg = load_spec(chain_assets.spec_file)
    for key in ("results_dir", "train.results_dir", "train.resume_training_checkpoint_path", "export.checkpoint",
                "export.onnx_file", "evaluate.checkpoint", "evaluate.trt_engine", "inference.checkpoint",
                "inference.trt_engine"):
        assert is_unset(get_value(cfg, key)), key
    text = chain_assets.spec_file.read_text()
    assert ".pth" not in text and ".onnx" not in text


def test_the_chain_runs_to_done_with_every_path_inferred(chain_run):
    jobs = chain_run.jobs
    train, export, evaluate, inference = (jobs[a] for a in ("train", "export", "evaluate", "inference"))
    assert {a: j.status for a, j in jobs.items()} == dict.fromkeys(jobs, DONE), {a: j.reason for a, j in jobs.items()}
    assert (export.parent_id, evaluate.parent_id, inference.parent_id) == (train.id, export.id, export.id)
    assert [j.name for j in (train, export, evaluate, inference)] == ["tiny-train", "tiny-export", "tiny-evaluate",
                                                                     "tiny-inference"]
    for job in jobs.values():
        assert job.results_dir == os.path.join(str(chain_run.workspace_path), "results", job.id)
        assert _filled(job)["results_dir"] == job.results_dir
        assert job.started_at >= job.queued_at and job.finished_at > job.started_at and job.attempts == 1

    # The train job's model: the best validation's checkpoint, found in the layout train wrote.
    folder = train.outputs["folder"]
    assert folder in (train.results_dir, os.path.join(train.results_dir, "train"))
    print(f"train wrote into {'<job>/train' if folder.endswith('/train') else '<job>'}")
    records = validation_records(folder)
    best = max(records, key=lambda r: (r["metrics"][MONITOR], r["epoch"]))
    expected = [p for s, e, p in checkpoints(folder) if (e, s) == (best["epoch"], best["global_step"])]
    assert train.outputs["model"] == expected[0]
    assert train.metrics["best_epoch"] == best["epoch"] and train.metrics[MONITOR] == best["metrics"][MONITOR]

    onnx = os.path.join(export.results_dir, "model.onnx")
    assert _filled(export) == {"results_dir": export.results_dir, "encryption_key": "tlt_encode",
                               "export.checkpoint": train.outputs["model"], "export.onnx_file": onnx}
    assert export.outputs["model"] == onnx and os.path.getsize(onnx) > 0 and export.metrics["check_ok"]
    assert _filled(evaluate)["evaluate.checkpoint"] == onnx and "evaluate.trt_engine" not in _filled(evaluate)
    assert _filled(inference)["inference.checkpoint"] == onnx
    assert load_spec(evaluate.spec_path).evaluate.checkpoint == onnx  # the spec as run
    assert inference.metrics["images"] == 4 and os.path.isdir(inference.outputs["images_annotated"])

    # Every job ends its status.json with TAO's final line, the metrics under kpi.
    for job in jobs.values():
        lines = [json.loads(line) for line in open(job.status_path, encoding="utf-8")]
        assert lines[-1]["status"] == "SUCCESS"
        assert lines[-1].get("kpi", {}) == {k: v for k, v in job.metrics.items() if not isinstance(v, bool)}


def test_the_chains_evaluate_equals_a_direct_evaluate_of_the_onnx(chain_run, chain_assets, tmp_path):
    evaluate = chain_run.jobs["evaluate"]
    onnx = chain_run.jobs["export"].outputs["model"]
    direct = run_cli("evaluate", "-e", str(chain_assets.spec_file), f"evaluate.checkpoint={onnx}",
                     f"results_dir={tmp_path}", env={**cli_env(), **JOB_ENV})
    assert direct.returncode == 0, direct.stderr[-2000:]
    mine = json.loads(open(tmp_path / "evaluate" / "latest_results.json").read())
    assert mine == evaluate.metrics  # exact: same graph, data and onnxruntime on one CPU
    chained = evaluate.outputs["folder"]
    # ... down to every predicted box, mask and score
    assert open(tmp_path / "evaluate" / "annotations_results.json").read() == \
        open(os.path.join(chained, "annotations_results.json")).read()
    assert len(json.loads(open(tmp_path / "evaluate" / "annotations_results.json").read())) > 0


def test_list_and_show_print_what_people_look_at(chain_run):
    env = {**cli_env(), "MASK_GROUNDING_DINO_JOBS": str(chain_run.workspace_path)}
    listing = run_cli("jobs", "list", env=env)
    assert listing.returncode == 0
    rows = listing.stdout.strip().splitlines()
    assert rows[0].split() == ["ID", "NAME", "ACTION", "STATUS", "PARENT", "CREATED", "STARTED", "RAN", "TRIES",
                               "RESULT"]
    assert [r.split()[2:4] for r in rows[1:]] == [["train", "Done"], ["export", "Done"], ["evaluate", "Done"],
                                                   ["inference", "Done"]]
    assert f"{MONITOR} " in rows[1] and "test_mAP@50" in rows[3] and "results on 4 images" in rows[4]
    print(listing.stdout)

    show = run_cli("jobs", "show", "tiny-evaluate", env=env)
    assert show.returncode == 0
    text = show.stdout
    export = chain_run.jobs["export"]
    for expected in ("  status       Done", f"  parent       {export.short_id} (export, tiny-export) Done",
                     "Filled by the job layer", f"evaluate.checkpoint  <- parent_model: {export.outputs['model']}",
                     "Metrics", "[bbox] test_mAP@50", "Files", "latest_results.json", "History", "Done: attempt 1"):
        assert expected in text, expected
    print(text)
    train = run_cli("jobs", "show", "tiny-train", env=env).stdout
    assert "automl       policy off -> plain: plain training" in train and "model chosen" in train
    as_json = json.loads(run_cli("jobs", "show", chain_run.jobs["train"].short_id, "--json", env=env).stdout)
    assert as_json["outputs"]["model"] == chain_run.jobs["train"].outputs["model"] and as_json["events"]


def test_the_log_says_what_was_filled_and_that_the_train_job_trained_plainly(chain_run):
    # The chain runs with --automl-policy off (an AutoML train job: tests/automl/test_shared_storage.py).
    train_log = open(chain_run.jobs["train"].log_path, encoding="utf-8").read()
    assert "automl_policy off: plain training" in train_log
    assert "Training finished" in train_log
    export_log = open(chain_run.jobs["export"].log_path, encoding="utf-8").read()
    assert f"export.checkpoint <- parent_model: {chain_run.jobs['train'].outputs['model']}" in export_log
