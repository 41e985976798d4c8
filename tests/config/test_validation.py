"""Every kind of spec mistake gives one clear line, all reported together, as a SpecError."""

import pytest

from mask_grounding_dino.config import load_spec, require
from mask_grounding_dino.errors import SpecError, UserError


def problems_of(*args, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(*args, **kwargs)
    assert isinstance(info.value, UserError)
    return info.value.problems


def test_all_problems_at_once_with_file_and_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("""\
model:
  hiden_dim: 128
  backbone: swin_t
  num_select: 2000
train:
  num_epochs: ten
dataset:
  augmentation:
    train_random_crop_min: 400
    train_random_crop_max: 300
""")
    lines = problems_of(spec)
    assert f"{spec}:2: model.hiden_dim: unknown key; did you mean model.hidden_dim?" in lines
    assert any(line.startswith(f"{spec}:3: model.backbone: 'swin_t' is not allowed; choose one of: swin_tiny_224_1k")
               for line in lines)
    assert f"{spec}:4: model.num_select: 2000 is above the maximum 1000 (allowed range 1..1000)" in lines
    assert f"{spec}:6: train.num_epochs: expected an integer, got 'ten' (string)" in lines
    assert (f"{spec}:10: dataset.augmentation.train_random_crop_max: 300 must be > "
            "dataset.augmentation.train_random_crop_min (400)") in lines
    assert len(lines) == 5


def test_override_problems_name_the_override():
    lines = problems_of(overrides=["model.lr=1e-3", "train.optim.lr=fast", "dataset.workers=-1"])
    assert "override 'model.lr=1e-3': model.lr: unknown key; did you mean train.optim.lr?" in lines
    assert "override 'train.optim.lr=fast': train.optim.lr: expected a number, got 'fast' (string)" in lines
    assert any(line.startswith("override 'dataset.workers=-1': dataset.workers: -1 is below the minimum 0")
               for line in lines)


def test_type_mistakes():
    lines = problems_of(overrides={"train.gpu_ids": 0, "model.aux_loss": "maybe", "model.hidden_dim": 1.5,
                                   "dataset.augmentation": [1], "model.num_queries": None})
    text = "\n".join(lines)
    assert "train.gpu_ids: expected a list of int values, got 0 (integer)" in text
    assert "model.aux_loss: expected a boolean (true/false), got 'maybe' (string)" in text
    assert "model.hidden_dim: expected an integer, got 1.5 (number)" in text
    assert "dataset.augmentation: expected a section (mapping of keys), got [1] (list)" in text
    assert "model.num_queries: expected an integer, got null" in text


def test_unknown_keys_in_list_items_and_shorthand_typos():
    lines = problems_of(overrides={"dataset.train_data_sources": [{"image_dir": "a", "json": "b"}],
                                   "epochs": 3, "evaluate.test_threshold": 0.3})
    text = "\n".join(lines)
    assert "dataset.train_data_sources[0].json: unknown key; did you mean dataset.train_data_sources[0].json_file?" \
        in text
    assert "epochs: unknown key; did you mean num_epochs?" in text
    assert "evaluate.test_threshold: unknown key; did you mean evaluate.text_threshold?" in text


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("model:\n  hidden_dim: 256\n  backbone: [swin\ntrain: {}\n")
    lines = problems_of(spec)
    assert len(lines) == 1 and lines[0].startswith(f"{spec}:4:") and "YAML syntax error" in lines[0]


def test_missing_file_duplicate_key_and_non_mapping(tmp_path):
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: spec file not found"]
    dup = tmp_path / "dup.yaml"
    dup.write_text("train:\n  seed: 1\n  seed: 2\n")
    assert problems_of(dup) == [f"{dup}:3: train.seed: duplicate key (also on line 2); keep only one"]
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert "a spec must be a mapping" in problems_of(listing)[0]


def test_override_syntax_mistakes():
    text = "\n".join(problems_of(overrides=["train.num_epochs", "train..seed=1",
                                            "dataset.train_data_sources.5.image_dir=x",
                                            "model.hidden_dim.x=1", "train.optim.lr_steps=[1,"]))
    assert "override 'train.num_epochs': expected key=value" in text
    assert "override key 'train..seed'" in text
    assert "index 5 is out of range (0 items; 0 appends one)" in text
    assert "model.hidden_dim holds a value, not a section" in text
    assert "cannot read the value as YAML" in text


def test_cross_key_checks():
    text = "\n".join(problems_of(overrides=["gen_trt_engine.tensorrt.opt_batch_size=8",
                                            "evaluate.input_width=640", "quantize.device=gpu0",
                                            "model.log_scale=big"]))
    assert "min_batch_size <= opt_batch_size <= max_batch_size, got 1 / 8 / 4" in text
    assert "evaluate: set both input_width and input_height, or neither (got 640 x None)" in text
    assert "quantize.device: 'gpu0' does not match the pattern" in text
    assert "model.log_scale: expected 'none', 'auto' or a number, got 'big'" in text


def test_enc_dec_layers_accept_small_presets_only_up_to_six():
    assert load_spec(overrides=["model.enc_layers=1", "model.dec_layers=2"]).model.dec_layers == 2
    assert problems_of(overrides=["model.dec_layers=7"]) == [
        "override 'model.dec_layers=7': model.dec_layers: 7 is above the maximum 6 (allowed range 1..6)"]


def test_require_lists_unset_keys():
    cfg = load_spec(overrides=["evaluate.trt_engine=x.engine"])
    with pytest.raises(SpecError) as info:
        require(cfg, "evaluate.checkpoint", "evaluate.trt_engine", "dataset.test_data_sources.json_file",
                action="evaluate")
    assert info.value.problems == [
        "evaluate.checkpoint: required for evaluate; set it in the spec or add evaluate.checkpoint=...",
        "dataset.test_data_sources.json_file: required for evaluate; set it in the spec or add "
        "dataset.test_data_sources.json_file=...",
    ]
