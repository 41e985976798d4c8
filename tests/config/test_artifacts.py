"""The generated schemas/ and references/ files: current, well-formed and loadable."""

import json
import pathlib

import yaml

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.config.artifacts import (REGENERATE_COMMAND, generated_files, stale_artifacts,
                                                  write_artifacts)
from mask_grounding_dino.config.experiment import ACTIONS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_files_are_current():
    stale = stale_artifacts(REPO_ROOT)
    assert not stale, (f"generated files are stale or missing: {', '.join(stale)}; regenerate them from the "
                       f"repository root with: {REGENERATE_COMMAND}")


def test_write_then_check(tmp_path):
    assert len(stale_artifacts(tmp_path)) == 14
    written = write_artifacts(tmp_path)
    assert len(written) == 14 and stale_artifacts(tmp_path) == []
    (tmp_path / "schemas" / "train.schema.json").write_text("{}\n")
    assert stale_artifacts(tmp_path) == ["schemas/train.schema.json"]


def test_layout_matches_tao_conventions():
    files = generated_files()
    train = json.loads(files["schemas/train.schema.json"])
    assert set(train) == {"automl_default_parameters", "automl_disabled_parameters", "default", "popular",
                          "properties", "required", "type", "x_tao_schema"}
    text = files["schemas/train.schema.json"]
    assert '"maximum": Infinity' in text  # TAO writes unbounded limits this way
    assert text == json.dumps(train, indent=2, sort_keys=True) + "\n"
    # The train schema leaves out the other actions' own sections; each action schema has its own.
    assert "evaluate" not in train["properties"] and "quantize" in train["properties"]
    for action in ("evaluate", "inference", "export", "gen_trt_engine"):
        schema = json.loads(files[f"schemas/{action}.schema.json"])
        assert action in schema["properties"] and schema["x_tao_schema"]["action"] == action
    types = {node.get("type") for node in _nodes(train)}
    assert types <= {"int", "float", "bool", "string", "list", "categorical", "collection", "ordered_int"}


def test_templates_load_and_equal_schema_defaults(tmp_path):
    files = generated_files()
    for action in ACTIONS:
        text = files[f"references/spec_template_{action}.yaml"]
        schema = json.loads(files[f"schemas/{action}.schema.json"])
        assert yaml.safe_load(text) == schema["default"]
        path = tmp_path / f"{action}.yaml"
        path.write_text(text)
        load_spec(path)


def test_skill_info_commands_and_shorthands():
    info = yaml.safe_load(generated_files()["references/skill_info.yaml"])
    assert info["automl_enabled"] is True
    assert {action: entry["command"] for action, entry in info["actions"].items()} == {
        action: f"mask_grounding_dino {action} -e {{config_path}}" for action in ACTIONS}
    for short, full in info["spec_shorthand_keys"].items():  # every shorthand names a real key
        assert load_spec(overrides={short: load_spec_value(full)}) is not None


def load_spec_value(dotted):
    """The default value at a dotted key (so setting it through the shorthand is valid)."""
    from mask_grounding_dino.config import ExperimentConfig, get_value
    return get_value(ExperimentConfig(), dotted)


def _nodes(schema):
    for child in schema.get("properties", {}).values():
        if isinstance(child, dict):
            yield child
            yield from _nodes(child)
