"""The spec dataclasses: TAO's defaults, keyword construction, and an import that stays light."""

import dataclasses
import subprocess
import sys

from mask_grounding_dino.config import (BACKBONES, DatasetConfig, EvalDataSource, ExperimentConfig, InferDataSource,
                                        ModelConfig, TrainDataSource)
from mask_grounding_dino.config.fields import field_info
from mask_grounding_dino.config.hints import field_kinds
from mask_grounding_dino.config.model import TAO_BACKBONES


def test_defaults_follow_tao_reference():
    cfg = ExperimentConfig()
    # TAO's defaults (its config dataclasses and packaged schemas), a sample from every section.
    assert (cfg.model.backbone, cfg.model.num_queries, cfg.model.hidden_dim, cfg.model.enc_layers) == \
        ("swin_tiny_224_1k", 900, 256, 6)
    assert cfg.model.loss_types == ["labels", "boxes", "masks"] and cfg.model.num_region_queries == 100
    assert cfg.dataset.augmentation.scales == list(range(480, 801, 32))
    assert cfg.dataset.val_data_sources.data_type == "VG"
    assert (cfg.train.optim.lr, cfg.train.optim.lr_backbone, cfg.train.optim.lr_steps) == (2e-4, 2e-5, [10])
    assert (cfg.evaluate.conf_threshold, cfg.inference.conf_threshold) == (0.0, 0.5)
    assert (cfg.export.input_width, cfg.export.input_height, cfg.export.opset_version) == (960, 544, 17)
    assert cfg.gen_trt_engine.tensorrt.data_type == "FP32" and cfg.gen_trt_engine.tensorrt.max_batch_size == 4
    assert (cfg.quantize.backend, cfg.quantize.mode, cfg.quantize.algorithm) == ("torchao", "weight_only_ptq",
                                                                                 "minmax")


def test_runtime_defaults_that_differ_from_schema_defaults():
    # As in TAO: unset means multi-scale training, every class evaluated, no train sources.
    ds = DatasetConfig()
    assert ds.augmentation.fixed_random_crop is None and ds.eval_class_ids is None
    assert ds.train_data_sources == []
    fields = {f.name: f for f in dataclasses.fields(DatasetConfig)}
    assert field_info(fields["eval_class_ids"]).schema_default == [1]


def test_keyword_construction_and_independent_defaults():
    small = ModelConfig(backbone="resnet_tiny", hidden_dim=64, enc_layers=1, dec_layers=2, num_queries=50)
    assert (small.hidden_dim, small.dec_layers, small.num_queries) == (64, 2, 50)
    a, b = ModelConfig(), ModelConfig()
    a.return_interm_indices.append(5)
    assert b.return_interm_indices == [1, 2, 3, 4]  # lists are per instance


def test_backbones_extend_tao_names():
    assert BACKBONES[:len(TAO_BACKBONES)] == TAO_BACKBONES
    assert {"resnet_18", "resnet_tiny", "swin_nano"} <= set(BACKBONES) and len(set(BACKBONES)) == len(BACKBONES)


def test_data_source_helpers():
    ds = DatasetConfig(train_data_sources=[TrainDataSource(), TrainDataSource(image_dir="a", json_file="b.jsonl")])
    assert [s.image_dir for s in ds.used_train_data_sources()] == ["a"]
    assert EvalDataSource().is_unset and not EvalDataSource(json_file="x.json").is_unset
    assert InferDataSource(image_dir=["a", "", "b"]).image_dirs == ["a", "b"]
    assert InferDataSource(image_dir="a").image_dirs == ["a"]


def test_every_field_has_a_description():
    def walk(cls, prefix):
        kinds = field_kinds(cls)
        for f in dataclasses.fields(cls):
            yield f"{prefix}{f.name}", field_info(f).description
            kind = kinds[f.name].item if kinds[f.name].name == "list" else kinds[f.name]
            if kind.name == "section":  # sections, data sources, list items (quantize.layers)
                yield from walk(kind.cls, f"{prefix}{f.name}.")

    described = list(walk(ExperimentConfig, ""))
    assert len(described) > 170  # the walk reaches data sources and quantize layer rules too
    assert [path for path, text in described if not text] == []


def test_config_import_does_not_load_torch():
    code = "import sys, mask_grounding_dino.config as c; c.load_spec(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
