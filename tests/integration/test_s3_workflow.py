"""TAO's documented workflow with every data source in object storage, end to end.

TAO's Mask Grounding DINO skill gives its data sources as ``s3://`` URLs (``images.tar.gz``,
ODVG jsonl, label map, a COCO json for validation) in the "Typical Spec Overrides" of its
SKILL.md. This test uploads a generated dataset to a real S3 endpoint (moto's server on
127.0.0.1) under exactly that layout and runs the public command line with those override sets,
written as SKILL.md writes them (``S3_TRAIN`` / ``S3_EVAL``, the same keys and values; only the
epoch counts shrink and the tiny model's keys are added in the spec file):

train (validation at the end of the epoch, a checkpoint) -> evaluate -> the same evaluation
from the checkpoint's s3:// URL -> inference (class list, label_map.txt and inference.jsonl from
S3) -> ``dataset validate`` on the URLs, and the one-line errors of a missing object, a missing
bucket and missing credentials.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import torch

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "data"))
sys.path.insert(0, str(TESTS / "engine"))

from engine_helpers import cli_command, cli_env, make_text_encoder, tiny_spec, write_spec  # noqa: E402
from moto_s3 import moto_s3  # noqa: E402

from mask_grounding_dino.cli import main  # noqa: E402

pytestmark = pytest.mark.slow   # ~1-2 min: one training subprocess, several in-process runs

#: SKILL.md's bucket and prefixes, verbatim (the moto server is new, so the name is free).
S3_TRAIN = "s3://bucket/data/train"
S3_EVAL = "s3://bucket/data/eval"
NUM_VAL = 4


def train_overrides() -> dict:
    """SKILL.md's train overrides; epochs and intervals shrunk from 10 to 1 (validation and a
    checkpoint at the end of the only epoch)."""
    return {
        "train.num_gpus": 1,
        "train.num_epochs": 1,
        "train.checkpoint_interval": 1,
        "train.validation_interval": 1,
        "dataset.val_data_sources.data_type": "OD",
        "model.num_region_queries": 100,
        "dataset.train_data_sources": [{"image_dir": f"{S3_TRAIN}/images.tar.gz", "json_file": f"{S3_TRAIN}/annotations_odvg.jsonl", "label_map": f"{S3_TRAIN}/annotations_odvg_labelmap.json"}],  # noqa: E501
        "dataset.val_data_sources": {"image_dir": f"{S3_EVAL}/images.tar.gz", "json_file": f"{S3_EVAL}/annotations.json"},  # noqa: E501
    }


def evaluate_overrides(checkpoint: str) -> dict:
    return {
        "evaluate.checkpoint": checkpoint,
        "dataset.test_data_sources.data_type": "OD",
        "dataset.test_data_sources": {"image_dir": f"{S3_EVAL}/images.tar.gz", "json_file": f"{S3_EVAL}/annotations.json"},  # noqa: E501
    }


def inference_overrides(checkpoint: str, captions) -> dict:
    return {
        "inference.checkpoint": checkpoint,
        "dataset.infer_data_sources.data_type": "OD",
        "dataset.infer_data_sources": {"image_dir": f"{S3_EVAL}/images.tar.gz", "captions": captions},
    }


def cli_args(overrides: dict) -> list[str]:
    """``key=value`` arguments as a user types them: values in YAML flow syntax (JSON is a subset)."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in overrides.items()]


class Workflow:
    """The uploaded dataset, the spec file with the tiny model, and where runs write."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.synth = root / "synth"
        self.spec = root / "spec.yaml"

    def run(self, action: str, overrides: dict, capsys) -> tuple[int, str, str]:
        """The CLI's main in this process (its S3 client sees the moto server's environment)."""
        code = main([action, "-e", str(self.spec), *cli_args(overrides)])
        out = capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3_workflow")
    with moto_s3(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MASK_GROUNDING_DINO_CACHE", str(root / "cache"))   # archives and fetched checkpoints
        import s3fs

        wf = Workflow(root)
        assert main(["dataset", "synth", "--out", str(wf.synth), "--num-images", "8", "--num-val", str(NUM_VAL),
                     "--num-vg", "0", "--image-size", "64", "--seed", "0"]) == 0
        fs = s3fs.S3FileSystem()
        fs.mkdir("bucket")
        for name in ("images.tar.gz", "annotations_odvg.jsonl", "annotations_odvg_labelmap.json"):
            fs.put_file(str(wf.synth / "train" / name), f"{S3_TRAIN}/{name}")
        for name in ("images.tar.gz", "annotations.json", "label_map.txt", "inference.jsonl"):
            fs.put_file(str(wf.synth / "val" / name), f"{S3_EVAL}/{name}")
        spec = tiny_spec(wf.synth, make_text_encoder(root / "text_encoder"), root / "results")
        for key in ("train_data_sources", "val_data_sources"):
            del spec["dataset"][key]      # every data source comes from the overrides (S3)
        spec["inference"] = {"conf_threshold": 0.0}   # a barely trained model: keep every detection
        write_spec(wf.spec, spec)
        yield wf


@pytest.fixture(scope="module")
def trained(workflow):
    """``mask_grounding_dino train`` in a subprocess (as TAO's launcher runs it); its checkpoint."""
    results = workflow.root / "results" / "train"
    args = cli_args({**train_overrides(), "train.results_dir": str(results)})
    proc = subprocess.run(cli_command("train", "-e", str(workflow.spec), *args), env=cli_env(), cwd=str(TESTS.parent),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoints = sorted(results.glob("model_epoch_*.pth"))
    assert [c.name for c in checkpoints] == ["model_epoch_000_step_00002.pth"], proc.stdout[-2000:]
    return results, checkpoints[0]


def test_train_validates_on_s3_data_and_writes_a_checkpoint(trained):
    results, checkpoint = trained
    lines = (results / "val_metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1                                   # one validation pass, at the end of epoch 0
    record = json.loads(lines[0])
    assert record["epoch"] == 0 and record["global_step"] == 2      # 8 images, batch 4
    for name in ("[bbox] val_mAP@50-95", "[bbox] val_mAP@50", "[segm] val_mAP@50"):
        assert 0.0 <= record["metrics"][name] <= 1.0
    details = json.loads((results / "val_metrics_epoch_000.json").read_text())["details"]
    assert details, "validation wrote no COCO details"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert any(k.startswith("model.") for k in state["state_dict"])


def _evaluate(workflow, capsys, checkpoint: str, name: str) -> tuple[dict, list]:
    out_dir = workflow.root / "results" / name
    code, out, err = workflow.run("evaluate", {**evaluate_overrides(checkpoint), "evaluate.results_dir": str(out_dir)},
                                  capsys)
    assert code == 0, err
    assert f"on {S3_EVAL}/annotations.json" in out
    metrics = json.loads((out_dir / "latest_results.json").read_text())
    predictions = json.loads((out_dir / "annotations_results.json").read_text())   # <json stem>_results.json
    return metrics, predictions


def test_evaluate_from_s3_data_and_from_an_s3_checkpoint(workflow, trained, capsys):
    import s3fs

    _, checkpoint = trained
    local_metrics, local_predictions = _evaluate(workflow, capsys, str(checkpoint), "evaluate_local")
    assert {"[bbox] test_mAP@50", "[segm] test_mAP@50"} <= set(local_metrics)
    gt = json.loads((workflow.synth / "val" / "annotations.json").read_text())
    assert {p["image_id"] for p in local_predictions} == {img["id"] for img in gt["images"]}   # every image scored

    url = "s3://bucket/models/model_epoch_000_step_00002.pth"
    s3fs.S3FileSystem().put_file(str(checkpoint), url)
    remote_metrics, remote_predictions = _evaluate(workflow, capsys, url, "evaluate_s3")
    # The same weights read from S3: the same predictions and metrics, to the bit.
    assert remote_predictions == local_predictions and remote_metrics == local_metrics
    fetched = list((workflow.root / "cache" / "remote").glob("*/model_epoch_000_step_00002.pth"))
    assert len(fetched) == 1 and fetched[0].read_bytes() == checkpoint.read_bytes()


@pytest.mark.parametrize("form", ["class list", "label_map.txt", "inference.jsonl"])
def test_inference_from_s3(workflow, trained, capsys, form):
    _, checkpoint = trained
    names = (workflow.synth / "val" / "label_map.txt").read_text().split()
    classes = [" ".join(names[i:i + 2]) for i in range(0, len(names), 2)]
    overrides = {
        "class list": inference_overrides(str(checkpoint), classes[:3]),
        "label_map.txt": inference_overrides(str(checkpoint), [f"{S3_EVAL}/label_map.txt"]),   # coco_raw
        # coco_raw's referring form: image_path + expression per line, from S3
        "inference.jsonl": {**inference_overrides(str(checkpoint), None), "dataset.infer_data_sources.data_type": "VG",
                            "dataset.infer_data_sources.json_file": f"{S3_EVAL}/inference.jsonl"},
    }[form]
    if form == "inference.jsonl":
        overrides["dataset.infer_data_sources"] = {"image_dir": f"{S3_EVAL}/images.tar.gz"}
    out_dir = workflow.root / "results" / f"inference_{form.replace(' ', '_')}"
    code, _, err = workflow.run("inference", {**overrides, "inference.results_dir": str(out_dir)}, capsys)
    assert code == 0, err

    images = sorted(p.name for p in (out_dir / "images_annotated").rglob("*.jpg"))
    assert images == [f"val_{i:06d}.jpg" for i in range(NUM_VAL)]
    assert sorted(p.stem for p in (out_dir / "labels").rglob("*.txt")) == [n[:-4] for n in images]
    results = json.loads((out_dir / "results.json").read_text())
    index = json.loads((out_dir / "results_index.json").read_text())
    assert {r["file_name"] for r in results} <= set(images) | {f"images/{n}" for n in images}
    categories = [c["name"] for c in index["categories"]]
    if form == "class list":
        assert categories == classes[:3] and results      # conf_threshold 0: every image has detections
    elif form == "label_map.txt":
        assert categories == classes and results          # read from the S3 label map, in its order
    else:   # the barely trained region head may call every expression "no target": results may be empty
        expressions = [json.loads(line)["expression"] for line in
                       (workflow.synth / "val" / "inference.jsonl").read_text().splitlines()]
        assert sorted(categories) == sorted(set(expressions))   # one category per distinct expression


def test_training_resumes_from_an_s3_checkpoint(workflow, trained, capsys):
    """train.resume_training_checkpoint_path may be a URL (fetched once into the cache), like every
    other checkpoint key; the resumed run continues at the checkpoint's step in a new folder."""
    import s3fs

    _, checkpoint = trained
    url = "s3://bucket/runs/model_epoch_000_step_00002.pth"
    s3fs.S3FileSystem().put_file(str(checkpoint), url)
    results = workflow.root / "results" / "resumed"
    code, out, err = workflow.run("train", {**train_overrides(), "train.num_epochs": 2,
                                            "train.resume_training_checkpoint_path": url,
                                            "train.results_dir": str(results)}, capsys)
    assert code == 0, err
    assert sorted(c.name for c in results.glob("model_epoch_*.pth")) == ["model_epoch_001_step_00004.pth"]
    steps = [json.loads(line)["step"] for line in (results / "history.jsonl").read_text().splitlines()]
    assert steps and min(steps) > 2          # steps 1-2 were the checkpoint's: not trained again


def test_dataset_validate_on_the_s3_urls(workflow, capsys):
    overrides = {**train_overrides(), **evaluate_overrides("unused.pth")}
    code = main(["dataset", "validate", "-e", str(workflow.spec), *cli_args(overrides)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "annotations_odvg.jsonl" in out and "annotations.json" in out and "ERRORS" not in out

    code = main(["dataset", "validate", f"{S3_TRAIN}/annotations_odvg.jsonl", "--image-dir",
                 f"{S3_TRAIN}/images.tar.gz", "--label-map", f"{S3_TRAIN}/annotations_odvg_labelmap.json"])
    assert code == 0, capsys.readouterr().out


# -- bad input: one line, exit code 2 ----------------------------------------------------------------
def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_missing_object_names_its_key_and_url(workflow, trained, capsys):
    _, checkpoint = trained
    overrides = evaluate_overrides(str(checkpoint))
    overrides["dataset.test_data_sources"] = {"image_dir": f"{S3_EVAL}/images.tar.gz",
                                              "json_file": f"{S3_EVAL}/annotation.json"}   # typo
    code, _, err = workflow.run("evaluate", {**overrides, "evaluate.results_dir": str(workflow.root / "bad")}, capsys)
    assert code == 2
    assert _one_error_line(err) == ("error: dataset.test_data_sources.json_file: "
                                    f"{S3_EVAL}/annotation.json: file not found")

    overrides = evaluate_overrides("s3://bucket/models/missing.pth")
    code, _, err = workflow.run("evaluate", overrides, capsys)
    assert code == 2
    assert _one_error_line(err) == "error: evaluate.checkpoint: checkpoint 's3://bucket/models/missing.pth' does not exist"


def test_a_missing_bucket_is_one_line(workflow, capsys):
    overrides = train_overrides()
    overrides["dataset.train_data_sources"][0]["image_dir"] = "s3://no-such-bucket/data/train/images.tar.gz"
    code = main(["train", "-e", str(workflow.spec), *cli_args(overrides), f"train.results_dir={workflow.root / 'nb'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert _one_error_line(err) == ("error: dataset.train_data_sources[0].image_dir: image archive: "
                                    "s3://no-such-bucket/data/train/images.tar.gz: the bucket 'no-such-bucket' does "
                                    "not exist (or is not visible with these credentials)")


def test_no_credentials_is_one_line(workflow, trained, capsys, monkeypatch, tmp_path):
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        code, _, err = workflow.run("evaluate", evaluate_overrides("s3://bucket/models/model_epoch_000_step_00002.pth"),
                                    capsys)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert code == 2
    assert _one_error_line(err) == (
        "error: evaluate.checkpoint: s3://bucket/models/model_epoch_000_step_00002.pth: no credentials for this "
        "storage (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE in the environment)")
