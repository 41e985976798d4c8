"""Layer selection: TAO's rule semantics and the default sets."""

from __future__ import annotations

import pytest
from torch import nn

from mask_grounding_dino.config.quantize import QuantLayerConfig, QuantTensorConfig
from mask_grounding_dino.quantize.errors import QuantizeError
from mask_grounding_dino.quantize.layers import model_layers, plan_layers

INT8 = QuantTensorConfig(dtype="int8")
FP8 = QuantTensorConfig(dtype="fp8_e4m3fn")
NATIVE = QuantTensorConfig(dtype="native")


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.bert = nn.ModuleDict({"embeddings": nn.ModuleDict({"word_embeddings": nn.Embedding(10, 4)}),
                                    "dense": nn.Linear(4, 4)})
        self.transformer = nn.ModuleDict({"encoder": nn.ModuleDict({"linear1": nn.Linear(4, 4),
                                                                    "sampling_offsets": nn.Linear(4, 4)})})
        self.attn = nn.MultiheadAttention(4, 1)
        self.class_embed = nn.Linear(4, 4)


LAYERS = model_layers(Toy())


def test_candidates_are_linear_conv_embedding_with_their_base_kind():
    kinds = {name: (cls, kind) for name, cls, kind in LAYERS}
    assert "backbone.1" not in kinds                                      # norms are never candidates
    assert kinds["attn.out_proj"] == ("NonDynamicallyQuantizableLinear", "Linear")
    assert kinds["bert.embeddings.word_embeddings"] == ("Embedding", "Embedding")


def test_name_first_then_class_name():
    plan = plan_layers(LAYERS, layers=[QuantLayerConfig(module_name="Linear", weights=INT8)])
    # the class pattern matches plain Linear layers; MHA's out_proj has another class name
    assert set(plan.chosen) == {"bert.dense", "transformer.encoder.linear1", "transformer.encoder.sampling_offsets",
                                "class_embed"}
    plan = plan_layers(LAYERS, layers=[QuantLayerConfig(module_name="attn.*", weights=INT8)])
    assert set(plan.chosen) == {"attn.out_proj"}


def test_a_later_rule_wins_and_native_removes():
    rules = [QuantLayerConfig(module_name="transformer.*", weights=INT8),
             QuantLayerConfig(module_name="*sampling_offsets", weights=FP8),
             QuantLayerConfig(module_name="*linear1", weights=NATIVE)]
    plan = plan_layers(LAYERS, layers=rules)
    assert set(plan.chosen) == {"transformer.encoder.sampling_offsets"}
    assert plan.chosen["transformer.encoder.sampling_offsets"].weights == "fp8_e4m3fn"
    assert "native" in plan.skipped["transformer.encoder.linear1"]


def test_skip_names_remove_matches_last():
    rules = [QuantLayerConfig(module_name="Linear", weights=INT8)]
    plan = plan_layers(LAYERS, layers=rules, skip_names=["class_embed", "bert.*"])
    assert "class_embed" not in plan.chosen and "bert.dense" not in plan.chosen
    assert plan.skipped["class_embed"] == "skip_names 'class_embed'"


def test_activations_only_in_static_mode():
    rule = [QuantLayerConfig(module_name="class_embed", weights=INT8, activations=INT8)]
    assert plan_layers(LAYERS, layers=rule, mode="weight_only_ptq").chosen["class_embed"].activations is None
    assert plan_layers(LAYERS, layers=rule, mode="static_ptq").chosen["class_embed"].activations == "int8"


def test_unsupported_kinds_are_listed_as_skipped():
    rules = [QuantLayerConfig(module_name="*", weights=INT8)]
    plan = plan_layers(LAYERS, layers=rules, supported=("Linear", "Conv2d"), backend="modelopt.pytorch")
    assert plan.skipped["bert.embeddings.word_embeddings"] == "modelopt.pytorch does not quantise Embedding layers"


def test_default_sets_quantise_something_and_say_what_they_leave_out():
    weight_only = plan_layers(LAYERS, mode="weight_only_ptq")
    assert weight_only.defaults and {"bert.embeddings.word_embeddings", "backbone.0"} <= set(weight_only.chosen)
    assert "class_embed" not in weight_only.chosen                 # heads stay in float
    assert "bert.dense" in weight_only.chosen                      # the text encoder's Linear layers too
    static = plan_layers(LAYERS, mode="static_ptq")
    assert set(static.chosen) == {"backbone.0", "transformer.encoder.linear1"}     # no text encoder, no offsets
    assert static.skipped["transformer.encoder.sampling_offsets"] == "skip_names '*sampling_offsets'"
    assert static.skipped["bert.dense"].startswith("not in the default set")
    lines = static.summary()
    assert lines[0].startswith("quantised 2 layers (default layer set)")
    assert any("kept in float" in line and "sampling_offsets" in line for line in lines)


def test_rules_from_plain_dicts_and_bad_rules():
    plan = plan_layers(LAYERS, layers=[{"module_name": "class_embed", "weights": {"dtype": "int8"}}])
    assert set(plan.chosen) == {"class_embed"}
    with pytest.raises(QuantizeError, match=r"quantize.layers\[0\].module_name: empty"):
        plan_layers(LAYERS, layers=[{"module_name": "", "weights": {"dtype": "int8"}}])
    with pytest.raises(QuantizeError, match=r"quantize.layers\[0\].weights.dtype: 'int4'"):
        plan_layers(LAYERS, layers=[{"module_name": "x", "weights": {"dtype": "int4"}}])
