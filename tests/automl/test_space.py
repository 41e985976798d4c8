"""The search space built from the train schema: TAO's packaged one and ours."""

from __future__ import annotations

import json
import math
import pathlib

import optuna
import pytest

from mask_grounding_dino.automl.errors import AutoMLError
from mask_grounding_dino.automl.space import build_space, schema_leaves
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.config.schema import build_schema

TAO_SCHEMA = (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "tao" / "tao-skill-bank" / "models"
              / "tao-train-mask-grounding-dino" / "schemas" / "train.schema.json")


@pytest.fixture(scope="module")
def tao_schema() -> dict:
    return json.loads(TAO_SCHEMA.read_text())


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def test_every_tao_default_parameter_maps_to_a_distribution_within_taos_bounds(tao_schema):
    cfg = load_spec(overrides={"train.optim.lr_scheduler": "StepLR", "train.optim.optimizer": "SGD"})
    space = build_space(tao_schema, cfg)
    leaves = schema_leaves(tao_schema)
    by_name = {p.name: p for p in space.params}
    # momentum has no effect under any optimiser we run; the rest (StepLR: lr_step_size too) are searched.
    assert set(by_name) | set(space.skipped) == set(tao_schema["automl_default_parameters"])
    for name, param in by_name.items():
        node = leaves[name]
        low, high = _finite(node["minimum"]), _finite(node["maximum"])
        assert param.kind == ("int" if node["type"] == "int" else "float"), name
        assert low is None or param.low >= low, name
        assert high is None or param.high <= high, name
        dist = param.distribution()
        assert dist.low == param.low and dist.high == param.high
    # TAO's conditions: crop_max > crop_min (sampled first), num_select capped by num_queries.
    crop_max = by_name["dataset.augmentation.train_random_crop_max"]
    assert (crop_max.relation, crop_max.depends_on) == (">", "dataset.augmentation.train_random_crop_min")
    names = space.names()
    assert names.index("dataset.augmentation.train_random_crop_min") < names.index(crop_max.name)
    assert by_name["model.num_select"].high == cfg.model.num_queries == 900
    # Finite schema bounds are kept exactly.
    assert (by_name["dataset.augmentation.horizontal_flip_prob"].low,
            by_name["dataset.augmentation.horizontal_flip_prob"].high) == (0.0, 1.0)
    assert crop_max.high == 1333 and crop_max.low == 32


def test_our_schema_and_taos_give_the_same_space(tao_schema):
    cfg = load_spec()
    ours, theirs = build_space(build_schema("train"), cfg), build_space(tao_schema, cfg)
    assert {p.name: p.describe() for p in ours.params} == {p.name: p.describe() for p in theirs.params}


def test_rates_are_log_uniform_and_infinite_bounds_follow_the_documented_rule(tao_schema):
    space = build_space(tao_schema, load_spec(overrides={"train.optim.lr_scheduler": "StepLR"}))
    p = {x.name: x for x in space.params}
    for name, default in (("train.optim.lr", 2e-4), ("train.optim.weight_decay", 1e-4),
                          ("train.optim.lr_backbone", 2e-5)):
        assert p[name].log and math.isclose(p[name].low, default / 10) and math.isclose(p[name].high, default * 10)
    assert not p["train.optim.lr_decay"].log and math.isclose(p["train.optim.lr_decay"].high, 1.0)  # 10 x 0.1
    assert (p["train.optim.lr_step_size"].low, p["train.optim.lr_step_size"].high) == (1, 20)  # 2 x 10; period >= 1
    assert p["dataset.augmentation.train_random_crop_min"].high == 768  # 2 x 384


def test_parameters_without_effect_are_not_searched(tao_schema):
    space = build_space(tao_schema, load_spec())  # MultiStep, AdamW
    assert "lr_scheduler MultiStep" in space.skipped["train.optim.lr_step_size"]
    assert "AdamW" in space.skipped["train.optim.momentum"]
    frozen = build_space(tao_schema, load_spec(overrides={"train.freeze": ["backbone.0"]}))
    assert "frozen" in frozen.skipped["train.optim.lr_backbone"]


def test_num_select_never_exceeds_num_queries(tao_schema):
    space = build_space(tao_schema, load_spec(overrides={"model.num_queries": 10, "model.num_select": 10}))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        values = space.suggest(study.ask(), lambda key: 10)
        assert 1 <= values["model.num_select"] <= 10
        assert values["dataset.augmentation.train_random_crop_max"] > values["dataset.augmentation.train_random_crop_min"]


def test_custom_ranges_math_conditions_and_weights():
    schema = {"properties": {"a": {"properties": {
        "n": {"type": "int", "default": 8, "minimum": 1, "maximum": 100},
        "m": {"type": "int", "default": 8, "minimum": 1, "maximum": 100},
        "c": {"type": "categorical", "default": "x", "enum": ["x", "y", "z"]}}}},
        "automl_default_parameters": ["a.n", "a.m", "a.c"]}
    custom = {"a.n": {"math_cond": "^ 2"}, "a.m": {"math_cond": "/ 4", "valid_max": 30},
              "a.c": {"option_weights": [0, 3, 1]}}
    space = build_space(schema, load_spec(), custom_ranges=custom)
    p = {x.name: x for x in space.params}
    assert p["a.n"].choices == (1, 2, 4, 8, 16, 32, 64)
    assert (p["a.m"].low, p["a.m"].high, p["a.m"].step) == (4, 28, 4)
    weighted = p["a.c"]
    # u in [0, 1) mapped through cumulative weights 0, .75, 1: never x, y below .75, z above.
    assert [weighted.to_value(u, {}, None) for u in (0.0, 0.5, 0.74, 0.76, 0.99)] == ["y", "y", "y", "z", "z"]


def test_bad_parameters_are_one_clear_error(tao_schema):
    cfg = load_spec()
    with pytest.raises(AutoMLError, match="did you mean train.optim.lr"):
        build_space(tao_schema, cfg, hyperparameters=["train.optim.lrr"])
    with pytest.raises(AutoMLError, match="math_cond"):
        build_space(tao_schema, cfg, hyperparameters=["train.optim.lr"],
                    custom_ranges={"train.optim.lr": {"math_cond": "% 3"}})
    with pytest.raises(AutoMLError, match="not searched"):
        build_space(tao_schema, cfg, hyperparameters=["train.optim.lr"],
                    custom_ranges={"train.optim.lr_decay": {"valid_max": 0.5}})
    with pytest.raises(AutoMLError, match="empty search range"):
        build_space(tao_schema, cfg, hyperparameters=["train.optim.lr_decay"],
                    custom_ranges={"train.optim.lr_decay": {"valid_min": 0.5, "valid_max": 0.5}})
