"""``--help`` of the CLI: each action names its important keys with real example commands and
where its template and schema live; actions this version lacks say so everywhere."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys

import pytest

from mask_grounding_dino import cli, cli_help
from mask_grounding_dino.config import ExperimentConfig, load_spec
from mask_grounding_dino.config.hints import field_kinds
from mask_grounding_dino.config.overrides import split_key

from .conftest import REPO_ROOT

#: Keys a new user needs first, per action (each must appear in the action's --help).
IMPORTANT = {
    "evaluate": ["evaluate.checkpoint", "dataset.test_data_sources.image_dir", "dataset.test_data_sources.json_file"],
    "inference": ["inference.checkpoint", "dataset.infer_data_sources.captions", "dataset.infer_data_sources.image_dir"],
    "export": ["export.checkpoint", "export.onnx_file"],
    "train": ["dataset.train_data_sources.0.image_dir", "dataset.train_data_sources.0.json_file", "results_dir",
              "train.num_epochs", "train.pretrained_model_path"],
}


def _help(action: str, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([action, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def _is_spec_key(key: str) -> bool:
    """True when ``key`` names a key of the spec (list items by index)."""
    cls, kind = ExperimentConfig, None
    for part in split_key(key):
        if kind is not None and kind.name == "list" and part.isdigit():
            kind = kind.item
            cls = kind.cls
            continue
        kinds = field_kinds(cls) if cls is not None else {}
        if part not in kinds:
            return False
        kind = kinds[part]
        cls = kind.cls
    return True


def _implemented(action: str) -> bool:
    return importlib.util.find_spec(f"mask_grounding_dino.actions.{action}") is not None


@pytest.mark.parametrize("action", sorted(IMPORTANT))
def test_action_help_names_its_keys_examples_template_and_schema(action, capsys):
    text = _help(action, capsys)
    keys_part, _, rest = text.partition("important keys:")[2].partition("examples:")
    examples_part = rest.partition("spec files")[0]
    for key in IMPORTANT[action]:
        assert f"  {key} " in keys_part, key
        assert f" {key.split('.0.')[0]}" in examples_part, key    # and set in an example, as itself
    assert f"mask_grounding_dino {action} -e spec.yaml" in examples_part
    for path in (f"references/spec_template_{action}.yaml", f"schemas/{action}.schema.json"):
        assert path in text and (REPO_ROOT / path).is_file()


@pytest.mark.parametrize("action", [a for a in cli.ACTIONS if _implemented(a)])
def test_every_action_module_has_help_with_real_keys_and_examples_that_load(action, capsys):
    found = cli_help.action_help(action)
    assert found and found["summary"] and found["description"] and found["keys"] and found["examples"]
    for key, what in found["keys"]:
        assert _is_spec_key(key) and what, key
    template = str(REPO_ROOT / "references" / f"spec_template_{action}.yaml")
    printed = _help(action, capsys).partition("examples:\n")[2].partition("\n\n")[0]
    # The printed examples are shell lines joined by " \": pasted into a shell they are the commands.
    printed_commands = [shlex.split(c) for c in printed.replace(" \\\n", " ").splitlines()]
    assert printed_commands == [shlex.split(c) for c in found["examples"]]
    for argv in printed_commands:
        assert argv[:2] == ["mask_grounding_dino", action]
        args = cli._action_parser(action).parse_intermixed_args(
            [template if word == "spec.yaml" else word for word in argv[2:]])
        assert args.overrides and all("=" in word for word in args.overrides)
        load_spec(args.spec, args.overrides)         # every key and value is valid (raises otherwise)


def test_the_examples_use_the_checkpoints_the_train_examples_write(capsys):
    """TAO's layout: train writes in <results_dir>/train, so results_dir=X gives X/train/*.pth."""
    def settings(action):
        return [dict(word.split("=", 1) for word in shlex.split(command) if "=" in word)
                for command in cli_help.action_help(action)["examples"]]
    written = {f"{s['results_dir']}/train/mask_gdino_model_latest.pth" for s in settings("train")}
    assert written == {"runs/exp1/train/mask_gdino_model_latest.pth"}
    written |= {s["export.onnx_file"] for s in settings("export")}
    hub_ids = {"IDEA-Research/grounding-dino-tiny"}
    used = [s[f"{action}.checkpoint"] for action in ("evaluate", "inference", "export") for s in settings(action)]
    assert used and set(used) <= written | hub_ids, used


def test_top_help_and_action_help_say_which_actions_this_version_lacks(capsys, monkeypatch):
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for action in cli.ACTIONS:
        (line,) = [row for row in top.splitlines() if row.startswith(f"  {action} ")]
        assert ("not available in this version" in line) == (not _implemented(action)), line
    # An action without a module (a stand-in name, so the check holds whatever this version ships).
    monkeypatch.setattr(cli, "ACTIONS", cli.ACTIONS + ("distill",))
    assert cli.main(["--help"]) == 0
    assert "  distill         not available in this version" in capsys.readouterr().out
    text = _help("distill", capsys)
    assert "distill: not available in this version." in text and "spec_template_distill.yaml" in text
    assert "examples:" not in text


def test_help_does_not_import_torch():
    code = ("import sys\nfrom mask_grounding_dino import cli\n"
            "for argv in (['--help'], ['evaluate', '--help'], ['quantize', '--help']):\n"
            "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
