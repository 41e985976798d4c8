"""evaluate and inference with ``num_gpus: 2`` on a machine without a GPU: two real processes
(Lightning DDP over gloo) split the data, and every number and every file equals a one-process run.

Lightning re-runs the launching program for rank 1, so the 2-process runs happen in subprocesses:
the command line for inference, a script running several actions for evaluate (rank 1 re-runs
it too). Each rank of the script records the images it ran, so the split itself is checked.

A random-weight model scores ~0 against the real labels, which would make "every number equal"
empty; the OD labels are therefore the model's own top detections (as in
tests/engine/test_validation_matches_evaluate.py), so the metrics are well above 0.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import torch

from mask_grounding_dino.actions import evaluate, inference
from mask_grounding_dino.config import load_spec, save_spec
from mask_grounding_dino.utils.log import enable_console

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "engine"))
from engine_helpers import cli_command, cli_env  # noqa: E402
from engine_helpers import labels_from_predictions as _own_labels  # noqa: E402

#: Runs ``action spec`` pairs in one program; each rank writes the image ids it detected on.
SCRIPT = '''
import json, os, sys
import torch.distributed as dist
from mask_grounding_dino.actions import evaluate, inference
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.deploy.detector import Detector

seen = []
detect_batch = Detector.detect_batch
def recording(self, batch, mode):
    seen.extend(int(t.image_id) if mode == "OD" else [int(t.image_id), int(t.expression_id)] for t in batch.targets)
    return detect_batch(self, batch, mode)
Detector.detect_batch = recording

if __name__ == "__main__":
    folder, pairs = sys.argv[1], sys.argv[2:]
    for action, spec in zip(pairs[::2], pairs[1::2]):
        seen.clear()
        assert {"evaluate": evaluate, "inference": inference}[action].run(load_spec(spec), progress_bar=False) == 0
        rank, world = dist.get_rank(), dist.get_world_size()
        with open(os.path.join(folder, f"{os.path.basename(spec)}.rank{rank}.json"), "w") as f:
            json.dump({"rank": rank, "world_size": world, "seen": seen}, f)
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 OD images (batch 2: 3 batches, the last short; ranks run 2 + 1) and 3 VG images with 9
    expressions (5 batches; ranks run 3 + 2)."""
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    root = tmp_path_factory.mktemp("dist_data")
    generate_synthetic_dataset(str(root), SynthConfig(num_train=0, num_val=5, num_vg=3, width=64, height=64,
                                                      extract_images=True, seed=5))
    return root


def _spec(tmp_path, name: str, keys: dict):
    base = {"results_dir": str(tmp_path / name), "dataset.workers": 0, "dataset.batch_size": 2,
            "dataset.augmentation.test_random_resize": 96, "dataset.augmentation.random_resize_max_size": 128,
            "inference.input_width": 96, "inference.input_height": 96}
    return load_spec(overrides={**base, **keys})


def _in_process(module, cfg) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocesses run with OMP_NUM_THREADS=1: the same float summation order
    try:
        assert module.run(cfg, progress_bar=False) == 0
    finally:
        torch.set_num_threads(threads)


def _files(folder: pathlib.Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


#: Files whose text holds the run's own folder, spec or duration (compared without those fields).
_RUN_SPECIFIC = ("evaluate_spec.yaml", "inference_spec.yaml")


def _compare_evaluate(one: pathlib.Path, two: pathlib.Path, name: str) -> dict:
    metrics = json.loads((one / "latest_results.json").read_text())
    assert json.loads((two / "latest_results.json").read_text()) == metrics      # every number, exactly
    details = [json.loads((d / f"detailed_results_{name}.json").read_text()) for d in (one, two)]
    assert details[1]["metrics"] == details[0]["metrics"]                       # per-class tables, counts, curves
    skip = (*_RUN_SPECIFIC, f"detailed_results_{name}.json", f"evaluation_summary_{name}.txt")  # time, folder
    assert _files(two, skip) == _files(one, skip)           # predictions file, key_metrics csv: byte for byte
    return metrics


def _check_split(ranks: list[dict], expected: list) -> None:
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert ranks[0]["seen"] and ranks[1]["seen"], "a rank ran nothing"
    # Rank 0 runs the first batches, rank 1 the rest: together every sample exactly once, in data order.
    assert ranks[0]["seen"] + ranks[1]["seen"] == expected


@pytest.mark.slow
def test_evaluate_od_and_vg_on_two_cpu_processes_equal_one_process(data, tiny_checkpoint, tmp_path):
    enable_console()
    od_keys = {"evaluate.checkpoint": str(tiny_checkpoint),
               "dataset.test_data_sources": {"image_dir": str(data / "val" / "images.tar.gz"),
                                             "json_file": str(data / "val" / "annotations.json"), "data_type": "OD"}}
    _in_process(evaluate, _spec(tmp_path, "labels_run", od_keys))
    labels = tmp_path / "own_labels.json"
    _own_labels(data / "val" / "annotations.json", tmp_path / "labels_run" / "evaluate" / "annotations_results.json",
                labels)
    od_keys["dataset.test_data_sources"]["json_file"] = str(labels)
    vg_keys = {"evaluate.checkpoint": str(tiny_checkpoint), "evaluate.conf_threshold": 0.1,
               "dataset.test_data_sources": {"image_dir": str(data / "vg" / "images.tar.gz"),
                                             "json_file": str(data / "vg" / "annotations_odvg.jsonl"),
                                             "data_type": "VG"}}
    one_batch = {**od_keys, "dataset.batch_size": 8}  # 5 images, 1 batch: rank 1 has none and waits
    _in_process(evaluate, _spec(tmp_path, "od_one", od_keys))
    _in_process(evaluate, _spec(tmp_path, "vg_one", vg_keys))
    _in_process(evaluate, _spec(tmp_path, "one_batch_one", one_batch))

    specs = []
    for name, keys in (("od_two", od_keys), ("vg_two", vg_keys), ("one_batch_two", one_batch)):
        specs += ["evaluate", str(tmp_path / f"{name}.yaml")]
        save_spec(_spec(tmp_path, name, {**keys, "evaluate.num_gpus": 2}), specs[-1])
    script, ranks = tmp_path / "dist_script.py", tmp_path / "ranks"
    script.write_text(SCRIPT)
    ranks.mkdir()
    proc = subprocess.run([sys.executable, str(script), str(ranks), *specs], cwd=str(REPO_ROOT), env=cli_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    od = _compare_evaluate(tmp_path / "od_one" / "evaluate", tmp_path / "od_two" / "evaluate", "own_labels")
    assert len(od) == 24 and od["[bbox] test_mAP@50"] > 0.3 and od["[segm] test_mAP@50"] > 0.3, od
    vg = _compare_evaluate(tmp_path / "vg_one" / "evaluate", tmp_path / "vg_two" / "evaluate", "annotations_odvg")
    assert len(vg) == 9 and any(v > 0 for v in vg.values()), vg

    _check_split([json.loads((ranks / f"od_two.yaml.rank{r}.json").read_text()) for r in (0, 1)],
                 [image["id"] for image in json.loads(labels.read_text())["images"]])
    expressions = [json.loads(line) for line in (data / "vg" / "annotations_odvg.jsonl").read_text().splitlines()]
    vg_ranks = [json.loads((ranks / f"vg_two.yaml.rank{r}.json").read_text()) for r in (0, 1)]
    _check_split(vg_ranks, [[e["image_id"], e["grounding"]["expression_id"]] for e in expressions])
    assert [len(r["seen"]) for r in vg_ranks] == [6, 3]   # 5 batches of 2: rank 0 runs 3, rank 1 runs 2

    lone_metrics = _compare_evaluate(tmp_path / "one_batch_one" / "evaluate",
                                     tmp_path / "one_batch_two" / "evaluate", "own_labels")
    assert lone_metrics["[bbox] test_mAP@50"] > 0.3, lone_metrics
    lone = [json.loads((ranks / f"one_batch_two.yaml.rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(r["seen"]) for r in lone] == [5, 0]


@pytest.mark.slow
@pytest.mark.parametrize("data_type", ["OD", "VG"])
def test_inference_on_two_cpu_processes_writes_the_one_process_files(data, tiny_checkpoint, tmp_path, data_type):
    enable_console()
    source = ({"image_dir": str(data / "val" / "images"), "captions": [str(data / "val" / "label_map.txt")],
               "data_type": "OD"} if data_type == "OD" else
              {"image_dir": str(data / "vg" / "images.tar.gz"), "json_file": str(data / "vg" / "inference.jsonl"),
               "data_type": "VG"})
    keys = {"inference.checkpoint": str(tiny_checkpoint), "inference.conf_threshold": 0.05,
            "dataset.infer_data_sources": source}
    _in_process(inference, _spec(tmp_path, "one", keys))
    spec = tmp_path / "two.yaml"
    save_spec(_spec(tmp_path, "two", keys), spec)
    proc = subprocess.run(cli_command("inference", "-e", str(spec), "inference.num_gpus=2"), cwd=str(REPO_ROOT),
                          env=cli_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    output = proc.stdout + proc.stderr
    assert proc.stdout.count("inference.num_gpus=2 runs 2 CPU processes (DDP over gloo)") == 1
    assert "MEMBER: 2/2" in output and proc.stdout.count("Inference finished") == 1   # 2 ranks, one report

    one, two = _files(tmp_path / "one" / "inference", _RUN_SPECIFIC), _files(tmp_path / "two" / "inference",
                                                                             _RUN_SPECIFIC)
    results = json.loads(one["results.json"])
    assert results and len({r["image_id"] for r in results}) > 1          # detections on several images
    # Pictures and labels (each rank wrote its own), results.json and results_index.json: byte for byte.
    assert sorted(two) == sorted(one) and two == one
