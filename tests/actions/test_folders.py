"""Where each action writes (TAO's rule: ``<action>.results_dir``, else ``<results_dir>/<action>``),
what a ``results_dir`` typed on the command line means, and how ``--print-spec`` and an action's
first line say it."""

from __future__ import annotations

import os

import pytest

from mask_grounding_dino.actions.folders import action_folder, announce, command_line_wins
from mask_grounding_dino.cli import main
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.config.loader import load_spec_with_origins
from mask_grounding_dino.errors import SpecError

#: A spec as quickstart wrote them before: every action folder pinned under /runs/qs.
PINNED = """results_dir: /runs/qs
train:
  results_dir: /runs/qs/train
  num_epochs: 3
inference:
  results_dir: /runs/qs/inference
"""


@pytest.fixture
def pinned(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(PINNED)
    return path


def test_train_writes_under_results_dir_like_every_action(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_spec(overrides=["results_dir=runs/exp1"])
    assert action_folder(cfg, "train") == str(tmp_path / "runs" / "exp1" / "train")  # absolute
    assert action_folder(cfg, "evaluate") == str(tmp_path / "runs" / "exp1" / "evaluate")
    cfg = load_spec(overrides=["results_dir=runs/exp1", "train.results_dir=/elsewhere/t"])
    assert action_folder(cfg, "train") == "/elsewhere/t"
    assert action_folder(cfg, "inference") == str(tmp_path / "runs" / "exp1" / "inference")
    with pytest.raises(SpecError, match=r"results_dir: required for train; set results_dir \(training writes to "
                                        r"<results_dir>/train\) or train.results_dir"):
        action_folder(load_spec(), "train")


def test_results_dir_on_the_command_line_wins_over_the_files_action_folders(pinned):
    cfg, origins = load_spec_with_origins(pinned, ["results_dir=/runs/exp1"])
    notice = command_line_wins(cfg, origins, "train")
    assert notice == (f"notice: results_dir=/runs/exp1 from the command line wins: train.results_dir in {pinned}:3 "
                      "(and inference.results_dir there) is ignored; to choose the train folder itself, pass "
                      "train.results_dir=FOLDER")
    assert [action_folder(cfg, a) for a in ("train", "inference")] == ["/runs/exp1/train", "/runs/exp1/inference"]
    assert cfg.train.num_epochs == 3  # only the folders change


def test_an_action_folder_typed_too_is_kept(pinned):
    cfg, origins = load_spec_with_origins(pinned, ["results_dir=/runs/exp1", "train.results_dir=/runs/mine"])
    notice = command_line_wins(cfg, origins, "train")
    assert action_folder(cfg, "train") == "/runs/mine"
    assert notice == (f"notice: results_dir=/runs/exp1 from the command line wins: inference.results_dir in "
                      f"{pinned}:6 is ignored; to choose the inference folder itself, pass "
                      "inference.results_dir=FOLDER")


def test_without_results_dir_on_the_command_line_the_file_decides(pinned):
    cfg, origins = load_spec_with_origins(pinned, ["train.num_epochs=5"])
    assert command_line_wins(cfg, origins, "train") is None
    assert action_folder(cfg, "train") == "/runs/qs/train"
    # without a spec file there is no file key to ignore
    cfg, origins = load_spec_with_origins(None, {"results_dir": "/runs/exp1"})
    assert command_line_wins(cfg, origins, "train") is None


def test_print_spec_starts_with_the_folders_as_comments_and_stays_loadable(pinned, tmp_path, capsys):
    existing = tmp_path / "exp1" / "train"
    existing.mkdir(parents=True)
    (existing / "status.json").write_text("{}\n")
    before = pinned.read_bytes()
    assert main(["train", "-e", str(pinned), f"results_dir={tmp_path / 'exp1'}", "--print-spec"]) == 0
    printed = capsys.readouterr().out
    comments = [line for line in printed.splitlines() if line.startswith("#")]
    assert comments[:5] == [
        "# Folders (absolute) the actions of this spec write to; `train` is the one asked for:",
        f"#   train      {existing}  <- exists: resumes there if consistent",
        f"#   evaluate   {tmp_path / 'exp1' / 'evaluate'}",
        f"#   inference  {tmp_path / 'exp1' / 'inference'}",
        f"#   export     {tmp_path / 'exp1' / 'export'}"]
    assert comments[5].startswith(f"# notice: results_dir={tmp_path / 'exp1'} from the command line wins: ")
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(printed)
    cfg = load_spec(resolved)
    assert (cfg.results_dir, cfg.train.results_dir, cfg.inference.results_dir) == (str(tmp_path / "exp1"), "", "")
    assert pinned.read_bytes() == before  # the user's spec is only read
    assert not (tmp_path / "exp1" / "evaluate").exists()  # printing creates nothing


def test_first_line_says_where_and_whether_the_folder_is_new(tmp_path, capsys):
    announce("evaluate", str(tmp_path / "new"))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "latest_results.json").write_text("{}")
    announce("evaluate", str(tmp_path / "old"))
    assert capsys.readouterr().out.splitlines() == [
        f"evaluate: writing to {tmp_path / 'new'} (new folder)",
        f"evaluate: writing to {tmp_path / 'old'} (existing folder: files of the same name are replaced)"]
    assert not os.path.exists(tmp_path / "new")


@pytest.mark.parametrize("rank", ["0", "1"])
def test_the_notice_is_printed_by_rank_zero_only(pinned, tmp_path, capsys, monkeypatch, rank):
    # Lightning's DDP launcher re-runs the command line on every rank: one notice, not one per process.
    monkeypatch.setenv("RANK", rank)
    code = main(["evaluate", "-e", str(pinned), f"results_dir={tmp_path / 'exp1'}"])
    assert code == 2  # no evaluate.checkpoint in the spec: stops after the folders were resolved
    printed = capsys.readouterr().out
    assert ("from the command line wins" in printed) == (rank == "0")
