"""What a run writes goes to a local folder: ``results_dir`` (top level and each action's) and
the other written or folder-loaded keys are refused as URLs at spec load, one line each, naming
the key and how to copy instead. Data sources and checkpoints may be URLs."""

import pytest

from mask_grounding_dino.cli import main
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.errors import SpecError

RESULTS_KEYS = ["results_dir", "train.results_dir", "evaluate.results_dir", "inference.results_dir",
                "export.results_dir", "gen_trt_engine.results_dir", "quantize.results_dir"]


@pytest.mark.parametrize("key", RESULTS_KEYS)
def test_results_dir_urls_are_refused(key):
    with pytest.raises(SpecError) as info:
        load_spec(overrides=[f"{key}=s3://bucket/results"])
    assert info.value.problems == [
        f"override '{key}=s3://bucket/results': {key}: 's3://bucket/results' is a URL; results are written to a "
        "local folder only: give a local path, then copy the folder (e.g. aws s3 sync <folder> s3://bucket/results)"]


@pytest.mark.parametrize("key, hint", [
    ("export.onnx_file", "the ONNX file is written locally"),
    ("model.text_encoder_type", "the text encoder is loaded from a local folder or a Hugging Face hub id"),
])
def test_other_local_only_keys(key, hint):
    with pytest.raises(SpecError) as info:
        load_spec(overrides=[f"{key}=gs://bucket/x.onnx"])
    (line,) = info.value.problems
    assert line.startswith(f"override '{key}=gs://bucket/x.onnx': {key}: 'gs://bucket/x.onnx' is a URL; {hint}")


def test_data_sources_and_checkpoints_may_be_urls():
    cfg = load_spec(overrides={
        "results_dir": "runs/x", "train.results_dir": "file:///tmp/runs/x",       # file:// is local
        "train.pretrained_model_path": "s3://b/m.pth", "model.pretrained_backbone_path": "s3://b/bb.pth",
        "train.resume_training_checkpoint_path": "s3://b/model_epoch_000_step_00002.pth",
        "evaluate.checkpoint": "s3://b/m.pth", "inference.checkpoint": "s3://b/m.onnx", "export.checkpoint": "s3://b/m.pth",
        "dataset.train_data_sources": [{"image_dir": "s3://b/t/images.tar.gz", "json_file": "s3://b/t/a.jsonl",
                                        "label_map": "s3://b/t/l.json"}],
        "dataset.val_data_sources": {"image_dir": "s3://b/e/images.tar.gz", "json_file": "s3://b/e/a.json"}})
    assert cfg.train.pretrained_model_path == "s3://b/m.pth"


def test_cli_exit_code_and_one_line(capsys):
    assert main(["evaluate", "results_dir=s3://bucket/results", "--print-spec"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: override 'results_dir=s3://bucket/results': results_dir: ")
