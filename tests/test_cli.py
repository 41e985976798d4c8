"""The command line: exit codes, one-line errors, --print-spec, dispatch to actions and tools."""

import subprocess
import sys
import types

import pytest

from mask_grounding_dino import __version__, cli
from mask_grounding_dino.config import load_spec


@pytest.fixture
def fake_action(monkeypatch):
    """Install a stand-in ``mask_grounding_dino.actions.train`` that records the config it gets."""
    calls = []
    module = types.ModuleType("mask_grounding_dino.actions.train")

    def run(cfg):
        calls.append(cfg)
        return module.result

    module.run, module.result = run, None
    monkeypatch.setitem(sys.modules, "mask_grounding_dino.actions.train", module)
    return module, calls


def errors(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_spec_mistakes_exit_2_with_one_line_each(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model:\n  hiden_dim: 3\n  backbone: swin_t\n  num_queries: -5\ntrain:\n  num_epochs: x\n")
    assert cli.main(["train", "-e", str(spec)]) == 2
    lines = errors(capsys)
    assert lines[0] == f"error: {spec}:2: model.hiden_dim: unknown key; did you mean model.hidden_dim?"
    assert any("model.backbone: 'swin_t' is not allowed; choose one of:" in line for line in lines)
    assert any("model.num_queries: -5 is below the minimum 1" in line for line in lines)
    assert any("train.num_epochs: expected an integer, got 'x' (string)" in line for line in lines)
    assert all(line.startswith("error: ") for line in lines) and len(lines) == 4


def test_missing_file_and_yaml_error(tmp_path, capsys):
    assert cli.main(["evaluate", "-e", str(tmp_path / "missing.yaml")]) == 2
    assert errors(capsys) == [f"error: {tmp_path / 'missing.yaml'}: spec file not found"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  num_epochs: 3\n   seed: 1\n")
    assert cli.main(["train", "-e", str(bad)]) == 2
    (line,) = errors(capsys)
    assert line.startswith(f"error: {bad}:3:") and "YAML syntax error" in line


def test_print_spec_round_trips(tmp_path, capsys):
    args = ["inference", "--print-spec", "model.hidden_dim=128", "dataset.infer_data_sources.captions=[cat, dog]",
            "dataset.augmentation.scales=[320,352]", "num_select=50"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(printed)
    cfg = load_spec(resolved)
    assert cfg == load_spec(overrides=args[2:])
    assert (cfg.model.hidden_dim, cfg.model.num_select, cfg.dataset.infer_data_sources.captions) == \
        (128, 50, ["cat", "dog"])


def test_dispatch_to_action(fake_action, tmp_path):
    module, calls = fake_action
    spec = tmp_path / "spec.yaml"
    spec.write_text("train:\n  num_epochs: 2\n")
    assert cli.main(["train", "-e", str(spec), "train.seed=5"]) == 0
    assert (calls[0].train.num_epochs, calls[0].train.seed) == (2, 5)
    module.result = 3
    assert cli.main(["train"]) == 3


def test_action_not_available(monkeypatch, capsys):
    real_import = cli.importlib.import_module

    def fake_import(name, *args):
        if name == "mask_grounding_dino.actions.export":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    assert cli.main(["export", "export.checkpoint=a.pth"]) == 2
    assert errors(capsys) == ["error: action export is not available in this version"]


def test_interrupt_and_bugs(fake_action, capsys):
    module, _ = fake_action

    def interrupted(cfg):
        raise KeyboardInterrupt

    module.run = interrupted
    assert cli.main(["train"]) == 130
    assert errors(capsys) == ["interrupted"]

    def buggy(cfg):
        raise ZeroDivisionError("a bug")

    module.run = buggy
    with pytest.raises(ZeroDivisionError):  # bugs keep their traceback
        cli.main(["train"])


def test_unknown_command_and_version(capsys):
    assert cli.main(["trian"]) == 2
    assert errors(capsys) == ["error: unknown command 'trian'; did you mean train?"]
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mask_grounding_dino {__version__}"


@pytest.fixture
def tools_package(tmp_path, monkeypatch):
    """A stand-in tools package with one tool, so the test does not depend on other teams' tools."""
    package = tmp_path / "fake_tools_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "greet.py").write_text('''"""Say hello to a dataset.

Longer help text.
"""

def add_arguments(parser):
    parser.add_argument("name")
    parser.add_argument("--fail", action="store_true")


def run(args):
    from mask_grounding_dino.errors import DataError
    if args.fail:
        raise DataError(f"{args.name}: not a dataset")
    print(f"hello {args.name}")
    return 0
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "TOOLS_PACKAGE", "fake_tools_pkg")
    yield
    for name in ("fake_tools_pkg", "fake_tools_pkg.greet"):
        sys.modules.pop(name, None)


def test_dataset_tools(tools_package, capsys):
    assert cli.dataset_tools() == {"greet": "Say hello to a dataset."}
    assert cli.main(["dataset", "--help"]) == 0
    assert "greet  Say hello to a dataset." in capsys.readouterr().out
    assert cli.main(["dataset", "greet", "coco"]) == 0
    assert capsys.readouterr().out.strip() == "hello coco"
    assert cli.main(["dataset", "greet", "coco", "--fail"]) == 2
    assert errors(capsys) == ["error: coco: not a dataset"]
    assert cli.main(["dataset", "gret"]) == 2
    assert errors(capsys) == ["error: unknown dataset tool 'gret'; did you mean greet?"]


def test_dataset_without_tools_package(monkeypatch, capsys):
    monkeypatch.setattr(cli, "TOOLS_PACKAGE", "mask_grounding_dino.no_such_tools")
    assert cli.dataset_tools() == {}
    assert cli.main(["dataset", "validate"]) == 2
    assert "not available in this version" in errors(capsys)[0]


def test_schemas_command(tmp_path, capsys):
    assert cli.main(["schemas", "--out", str(tmp_path), "--check"]) == 1
    assert "regenerate with: mask_grounding_dino schemas" in capsys.readouterr().err
    assert cli.main(["schemas", "--out", str(tmp_path)]) == 0
    assert cli.main(["schemas", "--out", str(tmp_path), "--check"]) == 0


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "mask_grounding_dino", "train", "model.backbone=resnet_51"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("error: override 'model.backbone=resnet_51': model.backbone: 'resnet_51' is not "
                                 "allowed")
    assert "Traceback" not in out.stderr


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_code():
    """``mask_grounding_dino ... | head``: the reader closing early is no error worth a traceback."""
    child = subprocess.Popen([sys.executable, "-m", "mask_grounding_dino", "--help"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()      # before the child has printed anything (its imports take far longer)
    err = child.stderr.read().decode()
    assert child.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
