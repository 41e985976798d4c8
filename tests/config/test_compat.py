"""Compatibility with TAO's packaged files (the copy in tests/fixtures/tao).

What "the same" means is in mask_grounding_dino/config/compat.py: every TAO key path with
equal type/default/bounds/enum/annotations, except what deviations.yaml lists.
"""

import copy
import json

import pytest
import yaml

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.config.compat import (check_templates, compare_automl, compare_schema, format_report,
                                               load_deviations, schema_nodes)
from mask_grounding_dino.config.experiment import ACTIONS
from mask_grounding_dino.config.schema import build_manifest, build_schema


def tao_schema(skill_dir, action):
    return json.loads((skill_dir / "schemas" / f"{action}.schema.json").read_text())


@pytest.mark.parametrize("action", ACTIONS)
def test_every_tao_key_exists_with_same_type_and_default(tao_skill_dir, action):
    result = compare_schema(action, tao_schema(tao_skill_dir, action))
    report = format_report([result], {})
    print(report)  # the counts: pytest -s tests/config/test_compat.py
    assert result.ok, report
    assert result.compared > 130 and result.matching + len(result.deviating) == result.compared, report


def test_deviations_are_all_real(tao_skill_dir):
    """Each listed deviation differs from TAO (no stale entries) and each addition is absent in TAO."""
    deviations = load_deviations()
    theirs = schema_nodes(tao_schema(tao_skill_dir, "train"))
    ours = schema_nodes(build_schema("train"))
    for path, attributes in deviations["schema"].items():
        for attribute in attributes:
            assert ours[path].get(attribute) != theirs[path].get(attribute), f"{path}.{attribute} no longer differs"
    for path in deviations["additions"]:
        assert path in ours and path not in theirs, path


@pytest.mark.parametrize("name", ["spec_template_train.yaml", "spec_template_evaluate.yaml",
                                  "spec_template_inference.yaml", "spec_template_export.yaml",
                                  "spec_template_quantize.yaml", "spec_template_gen_trt_engine.yaml",
                                  "spec_template_deploy_evaluate.yaml", "spec_template_deploy_inference.yaml",
                                  "spec_template_deploy_gen_trt_engine.yaml"])
def test_tao_templates_load_and_validate(tao_skill_dir, name):
    path = tao_skill_dir / "references" / name
    cfg = load_spec(path)
    raw = yaml.safe_load(path.read_text())
    # Values survive loading (spot checks, including TAO's lower-case 'fp32' and the image_dir list).
    if "model" in raw:
        assert cfg.model.backbone == raw["model"]["backbone"]
    if name == "spec_template_deploy_inference.yaml":
        assert cfg.dataset.infer_data_sources.image_dir == ["/data/images"]
        assert len(cfg.dataset.infer_data_sources.captions) == 80
    if name == "spec_template_deploy_gen_trt_engine.yaml":
        assert cfg.gen_trt_engine.tensorrt.data_type == "FP32"


def test_all_reference_templates_are_covered(tao_skill_dir):
    results = check_templates(tao_skill_dir)
    assert len(results) == 9 and all(problems == [] for problems in results.values()), results


def test_automl_lists_match_manifest(tao_skill_dir):
    manifest = json.loads((tao_skill_dir / "schemas" / "manifest.json").read_text())
    ours = build_manifest()
    additions = load_deviations()["additions"]  # keys TAO's packaged schema lacks cannot be in its lists
    for action, entry in manifest["actions"].items():
        for key in ("automl_default_parameters", "automl_disabled_parameters"):
            assert sorted(set(ours["actions"][action][key]) - additions) == sorted(entry[key]), (action, key)
        assert ours["actions"][action]["popular"] == entry["popular"], action
    assert ours["automl_enabled"] is True and ours["network_arch"] == manifest["network_arch"]


def test_comparison_detects_differences(tao_skill_dir):
    theirs = copy.deepcopy(tao_schema(tao_skill_dir, "train"))
    model = theirs["properties"]["model"]
    model["properties"]["bbox_loss_coef"]["default"] = 5  # an int where we have 5.0
    model["properties"]["new_key"] = {"type": "int", "default": 1}
    del model["properties"]["has_mask"]
    theirs["properties"]["train"]["properties"]["optim"]["automl_default_parameters"].remove("train.optim.lr")
    result = compare_schema("train", theirs)
    assert result.missing == ["model.new_key"]
    assert result.mismatches == ["model.bbox_loss_coef.default: ours '5.0', TAO '5'"]
    assert result.unlisted_additions == ["model.has_mask"]
    additions = load_deviations()["additions"]
    assert compare_automl(build_schema("train"), theirs, additions) == result.automl_mismatches != []
