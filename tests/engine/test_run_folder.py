"""A training run never damages the run already in its results folder.

Each conflicting run stops with one line naming the folder and what to do, exit code 2, and
the folder is byte-identical afterwards (every file hashed, links included); before any of
this was checked, such runs overwrote train_spec.yaml, deleted csv_logs/metrics.csv and
appended a FAILURE to status.json, then died in Lightning with a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import torch

from engine_helpers import REFERENCE, write_spec
from mask_grounding_dino.cli import main
from mask_grounding_dino.engine.checkpoints import LATEST_NAME, checkpoint_name


def tree_hashes(folder) -> dict[str, str]:
    """Relative path -> sha256 of the bytes (links: their target) of everything under ``folder``."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[rel] = "link -> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[rel] = hashlib.sha256(handle.read()).hexdigest()
            else:
                found[rel] = "folder"
    return found


@pytest.fixture
def finished(reference_run, tmp_path):
    """A copy of the finished reference run (2 epochs, a checkpoint per step) and its spec."""
    root = tmp_path / "results"
    shutil.copytree(reference_run.parent, root, symlinks=True)
    return root, root / "train"


def refused(spec_path, capsys, *overrides) -> str:
    """Run the CLI; assert exit 2 with exactly one ``error:`` line; return that line."""
    assert main(["train", "-e", str(spec_path), *overrides]) == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), captured.err
    return errors[0]


def test_a_checkpoint_past_num_epochs(assets, finished, tmp_path, capsys):
    root, folder = finished
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=1")
    assert line == (f"error: {folder}: its checkpoint model_epoch_001_step_00008.pth has trained 2 epochs, more than "
                    "train.num_epochs=1; give a new results_dir for a new run, or set train.num_epochs above 2 to "
                    "continue this one")
    assert tree_hashes(root) == before


def test_a_mid_epoch_checkpoint_past_num_epochs(assets, finished, tmp_path, capsys):
    """The newest checkpoint is in the second epoch (step 6 of 4 per epoch) and num_epochs is 1."""
    root, folder = finished
    os.remove(folder / LATEST_NAME)
    os.symlink("model_epoch_001_step_00006.pth", folder / LATEST_NAME)
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=1")
    assert "has trained into epoch 2 (step 6), more than train.num_epochs=1" in line
    assert "set train.num_epochs to at least 2" in line
    assert tree_hashes(root) == before


def test_another_architecture(assets, finished, tmp_path, capsys):
    """Named from the spec saved in the folder (train_spec.yaml), before the model is built."""
    root, folder = finished
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=3", "model.dim_feedforward=128", "model.num_queries=12")
    assert line.startswith(f"error: {folder}: its train_spec.yaml is another architecture (")
    assert "model.dim_feedforward 64 there, 128 now" in line and "model.num_queries 10 there, 12 now" in line
    assert line.endswith("give a new results_dir for this model, or keep those model keys to continue that run")
    assert tree_hashes(root) == before


def test_another_architecture_with_only_the_checkpoint_to_tell(assets, finished, tmp_path, capsys):
    """Without train_spec.yaml, the spec stored in the checkpoint names the difference."""
    root, folder = finished
    os.remove(folder / "train_spec.yaml")
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=3", "model.hidden_dim=64")
    assert line.startswith(f"error: {folder}: its checkpoint model_epoch_001_step_00008.pth is another "
                           "architecture (model.hidden_dim 32 there, 64 now)")
    assert tree_hashes(root) == before


def test_a_parameter_shape_no_listed_key_predicts(assets, finished, tmp_path, capsys):
    """log_scale set to a number adds a learnable scale: the shapes of the built model and of the
    checkpoint are compared before anything is written."""
    root, folder = finished
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=3", "model.log_scale='0.0'")
    assert line.startswith(f"error: {folder}: {folder / 'model_epoch_001_step_00008.pth'} is a model of another "
                           "shape (")
    assert "log_scale is missing there); give a new results_dir for this model" in line
    assert tree_hashes(root) == before


def test_a_resume_checkpoint_from_another_run(assets, finished, reference_run, tmp_path, capsys):
    """The folder has its own checkpoints; resuming there from another folder's file would mix runs."""
    root, folder = finished
    other = tmp_path / "other.pth"
    shutil.copyfile(reference_run / "model_epoch_000_step_00002.pth", other)
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(root, REFERENCE))
    before = tree_hashes(root)
    line = refused(spec, capsys, "train.num_epochs=3", f"train.resume_training_checkpoint_path={other}")
    assert line == (f"error: {folder}: holds checkpoints of its own run (newest model_epoch_001_step_00008.pth); "
                    f"resuming there from {other} would mix two runs; give a new results_dir for the resumed run, "
                    "or leave train.resume_training_checkpoint_path empty to continue the folder's own run")
    assert tree_hashes(root) == before


def test_a_resume_checkpoint_without_training_state(assets, reference_run, tmp_path, capsys):
    """Weights alone (no optimiser, no loop position) cannot be resumed: use them as pretrained weights."""
    weights = tmp_path / "weights.pth"
    full = torch.load(reference_run / LATEST_NAME, map_location="cpu", weights_only=True)
    torch.save({"state_dict": full["state_dict"]}, weights)
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "results", REFERENCE))
    line = refused(spec, capsys, f"train.resume_training_checkpoint_path={weights}")
    assert line == (f"error: {weights}: holds weights without a training state (optimiser, loop position), so "
                    f"training cannot resume from it; to start from these weights set "
                    f"train.pretrained_model_path={weights} and leave train.resume_training_checkpoint_path empty")
    assert not (tmp_path / "results").exists()


def test_a_folder_without_checkpoints_but_another_spec(assets, reference_run, tmp_path, capsys):
    """A run stopped before its first checkpoint left train_spec.yaml and logs: another model there
    would mix two runs' logs."""
    folder = tmp_path / "results" / "train"
    folder.mkdir(parents=True)
    shutil.copyfile(reference_run / "train_spec.yaml", folder / "train_spec.yaml")
    (folder / "status.json").write_text('{"status": "STARTED"}\n')
    spec = write_spec(tmp_path / "spec.yaml", assets.spec(tmp_path / "results", REFERENCE))
    before = tree_hashes(folder)
    line = refused(spec, capsys, "model.enc_layers=2")
    assert "its train_spec.yaml is another architecture (model.enc_layers 1 there, 2 now)" in line
    assert tree_hashes(folder) == before


def test_a_folder_with_logs_but_no_checkpoint_continues_its_logs(assets, tmp_path, capsys):
    """Same architecture, no checkpoint yet: training starts from scratch and appends to the logs."""
    from engine_helpers import train_in_process

    spec = assets.spec(tmp_path / "results", {**REFERENCE, "train.num_epochs": 1,
                                               "dataset.val_data_sources": {"image_dir": "", "json_file": ""}})
    folder = tmp_path / "results" / "train"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text('{"status": "FAILURE", "message": "an earlier attempt"}\n')
    train_in_process(spec, tmp_path / "spec.yaml")
    assert capsys.readouterr().out.splitlines()[0] == (f"train: writing to {folder} (existing folder without "
                                                       "checkpoints: logs are appended)")
    lines = (folder / "status.json").read_text().splitlines()
    assert lines[0] == '{"status": "FAILURE", "message": "an earlier attempt"}' and len(lines) > 2
    assert checkpoint_name(0, 4) in os.listdir(folder)


@pytest.mark.parametrize("pinned", [True, False], ids=["spec-pins-train-folder", "spec-sets-results_dir-only"])
def test_the_readme_pattern_leaves_the_finished_run_untouched(assets, finished, tmp_path, capsys, pinned):
    """The reported damage, end to end: ``train -e <finished run's spec> results_dir=<elsewhere>
    train.num_epochs=1`` trains in ``<elsewhere>/train``, and a conflicting run in the finished
    folder is refused; the finished run's files and the spec file stay byte-identical.

    ``pinned``: the spec also sets ``train.results_dir`` / ``evaluate.results_dir`` (as specs
    written by quickstart did): the results_dir typed on the command line wins, with one notice.
    Before, that spec sent the run into the finished folder, which it damaged."""
    root, folder = finished
    spec = assets.spec(root, REFERENCE)
    if pinned:
        spec["train"]["results_dir"] = str(folder)
        spec["evaluate"] = {"results_dir": str(root / "evaluate")}
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    before, spec_bytes = tree_hashes(root), (tmp_path / "spec.yaml").read_bytes()
    exp1 = tmp_path / "exp1"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared
    try:
        assert main(["train", "-e", spec_path, f"results_dir={exp1}", "train.num_epochs=1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out.splitlines()
    first = [f"train: writing to {exp1 / 'train'} (new folder)"]
    if pinned:
        first.insert(0, f"notice: results_dir={exp1} from the command line wins: train.results_dir in "
                        f"{spec_path}:{_line_of(spec_path, 'results_dir', in_section='train')} (and "
                        "evaluate.results_dir there) is ignored; to choose the train folder itself, pass "
                        "train.results_dir=FOLDER")
    assert out[:len(first)] == first
    assert checkpoint_name(0, 4) in os.listdir(exp1 / "train")
    assert tree_hashes(root) == before and (tmp_path / "spec.yaml").read_bytes() == spec_bytes

    line = refused(spec_path, capsys, "train.num_epochs=1")  # the finished folder itself: a conflict
    assert line.startswith(f"error: {folder}: its checkpoint model_epoch_001_step_00008.pth has trained 2 epochs")
    assert tree_hashes(root) == before and (tmp_path / "spec.yaml").read_bytes() == spec_bytes


def _line_of(path, key: str, in_section: str) -> int:
    """1-based line of ``key:`` inside the top-level ``in_section:`` block of a YAML file."""
    inside = False
    for number, text in enumerate(open(path, encoding="utf-8"), start=1):
        if not text.startswith(" "):
            inside = text.startswith(f"{in_section}:")
        elif inside and text.strip().startswith(f"{key}:"):
            return number
    raise AssertionError(f"{in_section}.{key} not in {path}")


def test_a_run_whose_last_checkpoint_was_written_when_training_ended(assets, tmp_path, capsys):
    """Without an interval checkpoint in the run, the only one is written when training ends,
    where Lightning's stored epoch already counts the next epoch: that run (2 epochs) was read
    as 3 epochs trained, so rerunning the finished quickstart was refused."""
    from engine_helpers import train_in_process

    no_val = {"dataset.val_data_sources": {"image_dir": "", "json_file": ""}}
    spec = assets.spec(tmp_path / "results", {**no_val, "train.checkpoint_interval": 100})
    folder = train_in_process(spec, tmp_path / "spec.yaml")
    assert sorted(n for n in os.listdir(folder) if n.endswith(".pth")) == [LATEST_NAME, checkpoint_name(1, 8)]
    capsys.readouterr()
    before = tree_hashes(folder)
    train_in_process(spec, tmp_path / "again.yaml")
    assert capsys.readouterr().out.splitlines()[0].startswith(
        f"train: {folder} already holds this run trained to epoch 2/2 ({checkpoint_name(1, 8)}): nothing left")
    line = refused(tmp_path / "spec.yaml", capsys, "train.num_epochs=1")
    assert f"its checkpoint {checkpoint_name(1, 8)} has trained 2 epochs, more than train.num_epochs=1" in line
    assert tree_hashes(folder) == before
