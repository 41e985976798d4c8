"""A model path that is not there: one error (exit 2) listing the model files in its folder, or
saying that the folder is missing too; typo'd local paths never become hub look-ups."""

from __future__ import annotations

import pytest

from mask_grounding_dino import cli
from mask_grounding_dino.errors import CheckpointError
from mask_grounding_dino.model.checkpoint.hub import looks_like_hub_id
from mask_grounding_dino.model.checkpoint.locate import locate_checkpoint

DATA = ["dataset.test_data_sources.image_dir=pictures", "dataset.test_data_sources.json_file=test.json",
        "dataset.infer_data_sources.image_dir=pictures", "dataset.infer_data_sources.captions=[cat, dog]"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """``runs/exp1/train`` holding two checkpoints, a Hugging Face folder, an ONNX file and a log."""
    monkeypatch.chdir(tmp_path)
    train = tmp_path / "runs" / "exp1" / "train"
    (train / "hf_model").mkdir(parents=True)
    (train / "hf_model" / "config.json").write_text("{}")
    for name in ("mask_gdino_model_latest.pth", "model_epoch_000_step_00100.pth", "model.onnx", "train.log"):
        (train / name).write_bytes(b"")
    (tmp_path / "runs" / "exp1" / "notes.txt").write_text("")

    def no_network(*args, **kwargs):
        raise AssertionError("a local path must not be looked up on the hub")

    monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
    return train


LISTED = "'runs/exp1/train' holds: hf_model/, mask_gdino_model_latest.pth, model.onnx, model_epoch_000_step_00100.pth"


@pytest.mark.parametrize("action, extra", [("evaluate", []), ("inference", []),
                                           ("export", ["export.onnx_file=out.onnx"])])
def test_a_missing_checkpoint_lists_the_model_files_of_its_folder(runs, capsys, action, extra):
    wrong = "runs/exp1/train/mask_gdino_model_lastest.pth"
    assert cli.main([action, f"{action}.checkpoint={wrong}", *DATA, *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {action}.checkpoint: checkpoint '{wrong}' does not exist; {LISTED}"


def test_a_missing_onnx_file_lists_them_too(runs, capsys):
    assert cli.main(["inference", "inference.checkpoint=runs/exp1/train/modle.onnx", *DATA]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: inference.checkpoint: ONNX file 'runs/exp1/train/modle.onnx' does not exist; {LISTED}"


def test_a_missing_folder_is_named_with_the_nearest_folder_that_exists(runs, capsys):
    assert cli.main(["evaluate", "evaluate.checkpoint=runs/exp2/train/mask_gdino_model_latest.pth", *DATA]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ("error: evaluate.checkpoint: checkpoint 'runs/exp2/train/mask_gdino_model_latest.pth' does not "
                    "exist, nor does its folder 'runs/exp2/train' (the nearest folder that exists is 'runs'); 'runs' "
                    "holds no model file (.pth, .ckpt, .safetensors, .onnx or a Hugging Face folder)")


def test_a_folder_without_model_files_points_to_the_sub_folder_that_has_them(runs):
    with pytest.raises(CheckpointError) as info:
        locate_checkpoint("runs/exp1/mask_gdino_model_latest.pth", "evaluate.checkpoint")
    assert str(info.value) == ("evaluate.checkpoint: checkpoint 'runs/exp1/mask_gdino_model_latest.pth' does not "
                               f"exist; 'runs/exp1' holds no model file, but {LISTED}")


@pytest.mark.parametrize("typo", ["runs/exp9",              # owner folder "runs" exists: a local path
                                  "runz/model.pth",         # a checkpoint suffix: a local file
                                  "./runs/exp11", "runs/exp1/train/x", "~/model", "/abs/path"])
def test_typo_d_local_paths_fail_as_local_paths_without_a_hub_look_up(runs, typo):
    assert not looks_like_hub_id(typo)
    with pytest.raises(CheckpointError, match=r"^checkpoint '.*' does not exist"):
        locate_checkpoint(typo)


def test_a_local_folder_named_like_a_hub_id_is_the_local_folder(runs):
    local = runs.parent.parent.parent / "IDEA-Research" / "grounding-dino-tiny"
    local.mkdir(parents=True)
    assert locate_checkpoint("IDEA-Research/grounding-dino-tiny") == "IDEA-Research/grounding-dino-tiny"
    # With a local "IDEA-Research/" folder, every "IDEA-Research/..." is a local path.
    assert looks_like_hub_id("IDEA-Research/grounding-dino-base") is False
    with pytest.raises(CheckpointError, match="'IDEA-Research' holds: grounding-dino-tiny/"):
        (local / "config.json").write_text("{}")
        locate_checkpoint("IDEA-Research/grounding-dino-base")
