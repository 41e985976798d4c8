"""Real 2-process DDP on the CPU (gloo), launched the way a user launches it: ``train.num_gpus: 2``
on a machine without a GPU. Lightning re-runs the script for rank 1, so the run happens in a
subprocess (a script with a ``__main__`` guard) and each rank reports what it did."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine_helpers import (checkpoint_files, cli_env, model_weights, read_record, weights_digest, write_spec,
                            write_train_script)
from mask_grounding_dino.engine.checkpoints import LATEST_NAME


@pytest.mark.slow
def test_two_cpu_processes_share_the_data_and_agree_on_the_weights(assets, tmp_path):
    results = tmp_path / "results" / "train"
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "results", {"train.num_gpus": 2,
                                                                    "train.checkpoint_interval_unit": "step"}))
    script = write_train_script(tmp_path / "train_script.py")
    proc = subprocess.run([sys.executable, script, spec, str(tmp_path / "ranks")], env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("train.num_gpus=2 runs 2 CPU processes (DDP over gloo)") == 1

    ranks = [read_record(tmp_path / "ranks", r) for r in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    # 16 images, 2 ranks, batch 4 per rank (TAO's batch_size is per GPU): 2 steps per epoch
    assert [r["global_step"] for r in ranks] == [4, 4]
    assert ranks[0]["weights"] == ranks[1]["weights"], "replicas diverged"
    assert weights_digest(model_weights(results / LATEST_NAME)) == ranks[0]["weights"]

    for epoch in (0, 1):
        seen = [[i for b in r["batches"] if b["epoch"] == epoch for i in b["image_ids"]] for r in ranks]
        assert len(seen[0]) == len(seen[1]) == 8
        assert not set(seen[0]) & set(seen[1]), f"epoch {epoch}: both ranks trained on the same images"
        assert len(set(seen[0]) | set(seen[1])) == 16
    order = [[i for b in ranks[0]["batches"] if b["epoch"] == e for i in b["image_ids"]] for e in (0, 1)]
    assert order[0] != order[1]  # reshuffled each epoch

    # files are written once, by rank 0
    assert checkpoint_files(results) == ["model_epoch_000_step_00001.pth", "model_epoch_000_step_00002.pth",
                                         "model_epoch_001_step_00003.pth", "model_epoch_001_step_00004.pth"]
    statuses = [json.loads(line)["status"] for line in (results / "status.json").read_text().splitlines()]
    assert statuses == ["STARTED", "RUNNING", "RUNNING", "SUCCESS"]
    assert [json.loads(line)["epoch"] for line in (results / "val_metrics.jsonl").read_text().splitlines()] == [0, 1]
