"""Spec-parameter inference, action by action: what is filled from the job's folder and its
parent, what is kept because the user set it, what non-train actions drop."""

from __future__ import annotations

import os
import pathlib

import pytest

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.jobs import Job, JobError
from mask_grounding_dino.jobs.spec_params import fill_spec, spec_param_table


def _parent(action: str, model: str | None) -> Job:
    return Job(id="p" * 8 + "-0000", action=action, status="Done", outputs={"model": model} if model else {})


def _touch(path: pathlib.Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def _filled(records: list[dict]) -> dict[str, str]:
    return {r["key"]: r["value"] for r in records if r["value"] is not None}


def test_the_table_is_taos_for_mask_grounding_dino():
    assert spec_param_table("train") == {
        "results_dir": "output_dir", "encryption_key": "key",
        "model.pretrained_backbone_path": "ptm_if_no_resume_model",
        "train.pretrained_model_path": "ptm_if_no_resume_model",
        "train.resume_training_checkpoint_path": "resume_model"}
    assert spec_param_table("export") == {"results_dir": "output_dir", "encryption_key": "key",
                                          "export.checkpoint": "parent_model", "export.onnx_file": "create_onnx_file"}
    assert spec_param_table("gen_trt_engine")["gen_trt_engine.trt_engine"] == "create_engine_file"
    assert spec_param_table("quantize")["quantize.model_path"] == "parent_model"


def test_train_first_run_owns_its_folder_and_gets_taos_key(tmp_path):
    cfg = load_spec(overrides={"results_dir": "somewhere/else", "train.results_dir": "other"})
    filled = _filled(fill_spec(cfg, "train", str(tmp_path), None))
    assert filled == {"results_dir": str(tmp_path), "encryption_key": "tlt_encode"}
    assert cfg.results_dir == str(tmp_path) and cfg.train.results_dir == ""
    assert cfg.train.resume_training_checkpoint_path == "" and cfg.train.pretrained_model_path == ""


@pytest.mark.parametrize("layout", ["train", "."], ids=["results_dir/train", "results_dir"])
def test_train_resumes_from_its_own_latest_checkpoint_in_either_layout(tmp_path, layout):
    folder = tmp_path / layout
    for name in ("model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth"):
        _touch(folder / name)
    cfg = load_spec(overrides={"train.pretrained_model_path": "/data/start.pth"})
    records = fill_spec(cfg, "train", str(tmp_path), _parent("train", "/p/best.pth"))
    expected = str((folder / "model_epoch_001_step_00008.pth").resolve())
    assert cfg.train.resume_training_checkpoint_path == expected
    # the pretrained weights are not used on a resume: the user's value stays, nothing is added
    assert cfg.train.pretrained_model_path == "/data/start.pth"
    assert {r["key"]: r["note"] for r in records}["train.pretrained_model_path"].startswith("not used")


def test_the_action_subfolder_wins_over_the_job_folder(tmp_path):
    _touch(tmp_path / "model_epoch_000_step_00004.pth")           # older layout, stale
    _touch(tmp_path / "train" / "model_epoch_000_step_00002.pth")  # TAO's layout: results_dir/train
    cfg = load_spec()
    fill_spec(cfg, "train", str(tmp_path), None)
    assert cfg.train.resume_training_checkpoint_path == str(tmp_path / "train" / "model_epoch_000_step_00002.pth")


def test_a_retry_resumes_past_the_users_starting_checkpoint(tmp_path):
    own = _touch(tmp_path / "train" / "model_epoch_002_step_00012.pth")
    cfg = load_spec(overrides={"train.resume_training_checkpoint_path": "/runs/old/model_epoch_000_step_00004.pth"})
    records = fill_spec(cfg, "train", str(tmp_path), None)
    assert cfg.train.resume_training_checkpoint_path == own
    assert "starting point" in {r["key"]: r["note"] for r in records}["train.resume_training_checkpoint_path"]


def test_train_child_of_a_train_job_starts_from_the_parents_model(tmp_path):
    cfg = load_spec()
    filled = _filled(fill_spec(cfg, "train", str(tmp_path), _parent("train", "/p/model_epoch_003_step_00012.pth")))
    assert filled["train.pretrained_model_path"] == "/p/model_epoch_003_step_00012.pth"
    assert "model.pretrained_backbone_path" not in filled  # a full model is no backbone file


@pytest.mark.parametrize("action", ["evaluate", "inference"])
@pytest.mark.parametrize("model,key", [("/p/model.onnx", "checkpoint"),
                                       ("/p/model_epoch_001_step_00008.pth", "checkpoint"),
                                       ("/p/model.engine", "trt_engine")])
def test_evaluate_and_inference_fill_checkpoint_or_engine_by_file_type(tmp_path, action, model, key):
    cfg = load_spec()
    filled = _filled(fill_spec(cfg, action, str(tmp_path), _parent("export", model)))
    other = "trt_engine" if key == "checkpoint" else "checkpoint"
    assert filled[f"{action}.{key}"] == model
    assert f"{action}.{other}" not in filled  # TAO writes the same path into both


def test_a_model_the_user_set_is_kept(tmp_path):
    cfg = load_spec(overrides={"evaluate.trt_engine": "/mine/model.engine", "export.onnx_file": "/mine/m.onnx"})
    assert _filled(fill_spec(cfg, "evaluate", str(tmp_path), _parent("export", "/p/model.onnx"))).keys() == \
        {"results_dir", "encryption_key"}
    assert cfg.evaluate.trt_engine == "/mine/model.engine" and cfg.evaluate.checkpoint == "???"
    cfg = load_spec(overrides={"export.onnx_file": "/mine/m.onnx", "encryption_key": "secret"})
    filled = _filled(fill_spec(cfg, "export", str(tmp_path), _parent("train", "/p/best.pth")))
    assert filled == {"results_dir": str(tmp_path), "export.checkpoint": "/p/best.pth"}
    assert (cfg.export.onnx_file, cfg.encryption_key) == ("/mine/m.onnx", "secret")


def test_export_gen_trt_engine_and_quantize_files(tmp_path):
    cfg = load_spec()
    assert _filled(fill_spec(cfg, "export", str(tmp_path), _parent("train", "/p/best.pth"))) == {
        "results_dir": str(tmp_path), "encryption_key": "tlt_encode", "export.checkpoint": "/p/best.pth",
        "export.onnx_file": os.path.join(str(tmp_path), "model.onnx")}
    cfg = load_spec()
    filled = _filled(fill_spec(cfg, "gen_trt_engine", str(tmp_path), _parent("export", "/p/model.onnx")))
    assert filled["gen_trt_engine.onnx_file"] == "/p/model.onnx"
    assert filled["gen_trt_engine.trt_engine"] == os.path.join(str(tmp_path), "model.engine")
    cfg = load_spec()
    assert _filled(fill_spec(cfg, "quantize", str(tmp_path), _parent("train", "/p/best.pth")))[
        "quantize.model_path"] == "/p/best.pth"


def test_non_train_actions_drop_the_pretrained_and_resume_keys(tmp_path):
    cfg = load_spec(overrides={"model.pretrained_backbone_path": "/b.pth", "train.pretrained_model_path": "/m.pth",
                               "train.resume_training_checkpoint_path": "/r.pth"})
    records = fill_spec(cfg, "export", str(tmp_path), _parent("train", "/p/best.pth"))
    assert (cfg.model.pretrained_backbone_path, cfg.train.pretrained_model_path,
            cfg.train.resume_training_checkpoint_path) == ("", "", "")
    assert [r["key"] for r in records if r["function"] == "drop"] == [
        "model.pretrained_backbone_path", "train.pretrained_model_path", "train.resume_training_checkpoint_path"]


@pytest.mark.parametrize("action,parent_action,model", [
    ("export", "export", "/p/model.onnx"),       # export needs a PyTorch checkpoint
    ("gen_trt_engine", "quantize", "/p/quantized_model_torchao.pth"),
    ("evaluate", "train", None),                 # the parent left no model
])
def test_a_parent_without_a_usable_model_is_a_clear_error(tmp_path, action, parent_action, model):
    with pytest.raises(JobError, match=r"parent job p{8}"):
        fill_spec(load_spec(), action, str(tmp_path), _parent(parent_action, model))
