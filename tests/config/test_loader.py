"""load_spec: files, every override form, coercion, and the YAML round trip."""

import pytest

from mask_grounding_dino.config import dump_spec, load_spec, save_spec, spec_to_dict
from mask_grounding_dino.config.overrides import parse_override
from mask_grounding_dino.errors import SpecError


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_and_defaults(tmp_path):
    spec = write(tmp_path, "model:\n  hidden_dim: 128\ntrain:\n  optim:\n    lr: 1e-4\n")
    cfg = load_spec(spec)
    assert cfg.model.hidden_dim == 128
    assert cfg.train.optim.lr == pytest.approx(1e-4)  # PyYAML reads "1e-4" as text; coerced to float
    assert cfg.model.nheads == 8  # untouched keys keep TAO's defaults


def test_override_forms(tmp_path):
    cfg = load_spec(overrides=[
        "train.num_epochs=3",
        "dataset.augmentation.scales=[320,352]",
        "dataset.val_data_sources={image_dir: a, json_file: b.json}",
        "dataset.train_data_sources.0.image_dir=imgs",  # index == length appends an entry
        "dataset.train_data_sources[0].json_file=train.jsonl",
        "dataset.train_data_sources[1].image_dir=more",
        "+model.text_encoder_type=minilm",
        "num_select=100",  # TAO skill shorthand for model.num_select
    ])
    assert cfg.train.num_epochs == 3
    assert cfg.dataset.augmentation.scales == [320, 352]
    assert (cfg.dataset.val_data_sources.image_dir, cfg.dataset.val_data_sources.data_type) == ("a", "VG")
    assert [(s.image_dir, s.json_file) for s in cfg.dataset.train_data_sources] == \
        [("imgs", "train.jsonl"), ("more", "")]
    assert cfg.model.num_select == 100


def test_skill_md_spec_overrides_work_as_written():
    s3_train, s3_eval = "s3://bucket/data/train", "s3://bucket/data/eval"
    # Copied in structure from TAO's SKILL.md "Typical Spec Overrides" (train and inference).
    cfg = load_spec(overrides={
        "train.num_gpus": 1,
        "train.num_epochs": 10,
        "train.checkpoint_interval": 10,
        "train.validation_interval": 10,
        "dataset.val_data_sources.data_type": "OD",
        "model.num_region_queries": 100,
        "dataset.train_data_sources": [{"image_dir": f"{s3_train}/images.tar.gz",
                                        "json_file": f"{s3_train}/annotations_odvg.jsonl",
                                        "label_map": f"{s3_train}/annotations_odvg_labelmap.json"}],
        "dataset.val_data_sources": {"image_dir": f"{s3_eval}/images.tar.gz",
                                     "json_file": f"{s3_eval}/annotations.json"},
    })
    assert cfg.dataset.val_data_sources.data_type == "OD"  # kept: a mapping merges into the section
    assert cfg.dataset.train_data_sources[0].label_map.endswith("labelmap.json")
    assert len(cfg.dataset.train_data_sources) == 1
    cfg = load_spec(overrides={
        "inference.checkpoint": "model.pth",
        "dataset.infer_data_sources.data_type": "OD",
        "dataset.infer_data_sources": {"image_dir": f"{s3_eval}/images.tar.gz",
                                       "captions": ["person", "bicycle", "car"]},
    })
    assert cfg.dataset.infer_data_sources.captions == ["person", "bicycle", "car"]
    assert cfg.dataset.infer_data_sources.data_type == "OD"


def test_coercion_and_tao_conventions(tmp_path):
    spec = write(tmp_path, """\
model:
  pretrained_backbone_path: null
  set_cost_bbox: 5
dataset:
  eval_class_ids: [1, 3]
  infer_data_sources:
    image_dir: [/a, /b]
    data_type: od
gen_trt_engine:
  tensorrt:
    data_type: fp16
evaluate:
  checkpoint: ???
wandb:
""")
    cfg = load_spec(spec, ["train.optim.lr=3e-4", "train.precision=bf16", "model.use_dn=false"])
    assert cfg.model.pretrained_backbone_path == ""  # null path == unset
    assert isinstance(cfg.model.set_cost_bbox, float)
    assert cfg.dataset.infer_data_sources.image_dir == ["/a", "/b"]
    assert cfg.dataset.infer_data_sources.data_type == "OD"
    assert cfg.gen_trt_engine.tensorrt.data_type == "FP16"
    assert cfg.evaluate.checkpoint == "???"
    assert cfg.wandb.project == "TAO Toolkit"  # an empty section keeps its defaults
    assert cfg.train.optim.lr == pytest.approx(3e-4) and cfg.train.precision == "bf16"
    assert cfg.model.use_dn is False


def test_parse_override_values():
    assert parse_override("a.b=1e-4") == ("a.b", "1e-4")
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=") == ("a.b", "")
    assert parse_override("wandb.name=yes") == ("wandb.name", "yes")  # not YAML 1.1's boolean
    assert parse_override("x=s3://bucket/key=v") == ("x", "s3://bucket/key=v")
    assert parse_override("++train.seed=3") == ("train.seed", 3)


def test_base_layer_is_below_file_and_overrides(tmp_path):
    spec = write(tmp_path, "train:\n  num_epochs: 5\n")
    cfg = load_spec(spec, ["train.seed=7"], base={"train": {"num_epochs": 2, "seed": 1}, "model": {"nheads": 4}})
    assert (cfg.train.num_epochs, cfg.train.seed, cfg.model.nheads) == (5, 7, 4)


def test_dump_round_trip(tmp_path):
    cfg = load_spec(overrides=["dataset.train_data_sources.0.image_dir=x", "inference.color_map={car: red}",
                               "quantize.layers=[{module_name: '*head*', weights: {dtype: fp8_e4m3fn}}]"])
    text = dump_spec(cfg)
    path = write(tmp_path, text, "resolved.yaml")
    assert load_spec(path) == cfg
    save_spec(cfg, tmp_path / "saved.yaml")
    assert load_spec(tmp_path / "saved.yaml") == cfg
    assert spec_to_dict(cfg)["quantize"]["layers"][0]["weights"]["dtype"] == "fp8_e4m3fn"


CAPTIONS = "dataset.infer_data_sources.captions"


@pytest.mark.parametrize("written", ["[red circle, blue square]", "red circle . blue square",
                                     "red circle, blue square", "'red circle . blue square .'"])
def test_captions_in_every_typed_form_from_a_file_and_the_command_line(tmp_path, written):
    spec = write(tmp_path, f"dataset:\n  infer_data_sources:\n    captions: {written}\n")
    from_file = load_spec(spec).dataset.infer_data_sources.captions
    from_override = load_spec(overrides=[f"{CAPTIONS}={written}"]).dataset.infer_data_sources.captions
    assert from_file == from_override == ["red circle", "blue square"]


def test_a_bad_caption_value_is_one_line_with_the_forms_and_where_it_was_written(tmp_path):
    spec = write(tmp_path, "dataset:\n  infer_data_sources:\n    captions: {red: 1}\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    (line,) = info.value.problems
    assert line.startswith(f"{spec}:3: {CAPTIONS}: expected a class list such as [red circle, blue square], "
                           "'red circle . blue square' or 'red circle, blue square', got {'red': 1}")
    assert line.endswith(f"put quotes around a value with spaces: {CAPTIONS}='red circle . blue square'")


def test_a_value_the_shell_split_at_its_spaces_gets_one_line_with_the_quoted_form():
    with pytest.raises(SpecError) as info:
        load_spec(overrides=[f"{CAPTIONS}=red", "circle", ".", "blue", "square", "train.num_epochs=3"])
    assert info.value.problems == [
        f"override '{CAPTIONS}=red' is followed by 'circle . blue square', which is not key=value: the shell "
        f"splits a value at its spaces; put quotes around it: {CAPTIONS}='red circle . blue square'"]
    with pytest.raises(SpecError) as info:   # a word with no override before it: the plain message
        load_spec(overrides=["circle"])
    assert info.value.problems == ["override 'circle': expected key=value, e.g. train.num_epochs=3"]
