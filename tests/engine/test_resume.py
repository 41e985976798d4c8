"""A run killed mid-epoch and restarted ends with the same weights as an uninterrupted one.

Equality is exact (``torch.equal``): per-step RNG seeding (module.on_train_batch_start),
per-sample seeding (sampling.SeededDataset) and the loader position stored in every
checkpoint (sampling.ResumableDataLoader) leave nothing to chance on the CPU.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine_helpers import (REFERENCE, checkpoint_files, cli_command, cli_env, model_weights, run_cli,
                            train_in_process, write_spec)
from mask_grounding_dino.engine.checkpoints import LATEST_NAME, find_resume_checkpoint, list_checkpoints


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _checkpoint(results_dir, step: int) -> str:
    return next(p for s, _, p in list_checkpoints(str(results_dir)) if s == step)


@pytest.mark.parametrize("step", [2, 4, 6], ids=["mid_epoch0", "last_batch_epoch0", "mid_epoch1"])
def test_resume_from_a_checkpoint_repeats_the_uninterrupted_run(assets, reference_run, tmp_path, step):
    """Resuming (in this process) from step 2, 4 (end of epoch 0: validation and the LR decay
    follow) and 6 (mid epoch 1, after a validation) gives every later checkpoint bit for bit."""
    spec = assets.spec(tmp_path / "results", {**REFERENCE,
                                               "train.resume_training_checkpoint_path": _checkpoint(reference_run, step)})
    results = train_in_process(spec, tmp_path / "spec.yaml")
    later = [n for n in checkpoint_files(reference_run) if int(n[-9:-4]) > step]
    assert checkpoint_files(results) == later  # nothing replayed, nothing skipped
    for name in later:
        assert_same_weights(model_weights(results / name), model_weights(reference_run / name))
    final = torch.load(results / LATEST_NAME, map_location="cpu", weights_only=True)
    assert final["global_step"] == 8 and final["epoch"] == 1


def test_more_epochs_continue_from_an_end_of_epoch_checkpoint(assets, reference_run, tmp_path):
    """TAO's default: checkpoints at epoch ends. Train 1 epoch, then rerun the same results_dir
    with num_epochs 2: it resumes automatically and ends where the 2-epoch reference run ended."""
    epochs = {**REFERENCE, "train.checkpoint_interval_unit": "epoch"}
    results = train_in_process(assets.spec(tmp_path / "results", {**epochs, "train.num_epochs": 1}),
                               tmp_path / "one.yaml")
    assert checkpoint_files(results) == ["model_epoch_000_step_00004.pth"]
    train_in_process(assets.spec(tmp_path / "results", {**epochs, "train.num_epochs": 2}), tmp_path / "two.yaml")
    assert checkpoint_files(results) == ["model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth"]
    assert_same_weights(model_weights(results / LATEST_NAME), model_weights(reference_run / LATEST_NAME))


def test_rerunning_a_finished_run_changes_nothing(assets, reference_run, tmp_path, capsys):
    """A finished run (its checkpoint exactly at num_epochs) says so in one line, trains nothing
    and writes nothing: no status line, no spec copy, no log file."""
    results = tmp_path / "results" / "train"
    results.mkdir(parents=True)
    last = "model_epoch_001_step_00008.pth"
    shutil.copyfile(reference_run / last, results / last)
    os.symlink(last, results / LATEST_NAME)
    before = os.path.getmtime(results / last)
    train_in_process(assets.spec(tmp_path / "results", REFERENCE), tmp_path / "spec.yaml")
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"train: {results} already holds this run trained to epoch 2/2 ({last}): nothing left to "
                   "train; raise train.num_epochs to train on, or give a new results_dir for a new run"]
    assert sorted(os.listdir(results)) == [LATEST_NAME, last] and os.path.getmtime(results / last) == before
    assert os.readlink(results / LATEST_NAME) == last


def _temp_files(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def _kill_during_a_checkpoint_write(proc: subprocess.Popen, results, after_step: int, timeout: float) -> bool:
    """Wait until the checkpoint of ``after_step`` exists, then SIGKILL ``proc`` as soon as the
    next checkpoint's temporary file shows up (or the next checkpoint is complete, if the write
    was too quick to be seen). Returns whether the kill landed while a write was in progress."""
    deadline = time.time() + timeout
    while not any(s == after_step for s, _, _ in list_checkpoints(str(results))):
        assert proc.poll() is None, f"training ended before step {after_step}: {proc.communicate()}"
        assert time.time() < deadline, "no checkpoint appeared in time"
        time.sleep(0.05)
    mid_write = False
    while time.time() < deadline and proc.poll() is None:
        if _temp_files(results):
            mid_write = True
            break
        if any(s > after_step for s, _, _ in list_checkpoints(str(results))):
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return mid_write


@pytest.mark.slow
def test_sigkill_mid_epoch_and_rerun_gives_the_uninterrupted_weights(assets, tmp_path):
    """The CLI, killed with SIGKILL in epoch 1 (after a validation, while writing a checkpoint),
    then started again with the same command, ends with the weights of an uninterrupted run.
    Both runs use one data-loading worker process, as real runs do."""
    overrides = {**REFERENCE, "dataset.workers": 1}
    reference_spec = write_spec(tmp_path / "reference.yaml", assets.spec(tmp_path / "reference", overrides))
    reference_dir = tmp_path / "reference" / "train"
    killed = tmp_path / "killed" / "train"
    killed_spec = write_spec(tmp_path / "killed.yaml", assets.spec(tmp_path / "killed", overrides))
    env = cli_env()
    # Both runs at once: the reference needs no supervision (each uses one thread).
    reference = subprocess.Popen(cli_command("train", "-e", reference_spec), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(cli_command("train", "-e", killed_spec), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        mid_write = _kill_during_a_checkpoint_write(victim, killed, after_step=5, timeout=400)
    finally:
        if victim.poll() is None:
            victim.kill()
    print(f"SIGKILL landed during a checkpoint write: {mid_write}")

    # What the kill left: complete checkpoints only, a valid latest link, stray temp files at most.
    saved = list_checkpoints(str(killed))
    assert saved and max(s for s, _, _ in saved) < 8
    for _, _, path in saved:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert {"state_dict", "optimizer_states", "loops", "lr_schedulers"} <= ckpt.keys()
    latest = killed / LATEST_NAME
    assert latest.is_file(), "mask_gdino_model_latest.pth must point to an existing checkpoint"
    assert os.path.realpath(latest) in {os.path.realpath(p) for _, _, p in saved}
    resume_from = find_resume_checkpoint(str(killed))
    assert resume_from == os.path.realpath(latest) and not resume_from.endswith(".tmp")

    rerun = run_cli("train", "-e", killed_spec, env=env, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"train: resuming in {killed} from {resume_from} (in epoch 2/2, step " in rerun.stdout
    out, _ = reference.communicate(timeout=400)
    assert reference.returncode == 0, out[-3000:]

    assert_same_weights(model_weights(killed / LATEST_NAME), model_weights(reference_dir / LATEST_NAME))
    assert checkpoint_files(killed) == checkpoint_files(reference_dir)
    for name in checkpoint_files(killed):
        assert_same_weights(model_weights(killed / name), model_weights(reference_dir / name))


_WRITER = r"""
import os, sys, time
import torch
from mask_grounding_dino.utils import atomic

target = sys.argv[1]
real_fsync = os.fsync
def stalled_fsync(fd):
    # every byte of the new checkpoint is in the temporary file, nothing is renamed yet
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stalled_fsync
atomic.atomic_torch_save({"state_dict": {"w": torch.full((256, 256), 2.0)}}, target)
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_file(tmp_path):
    """Killed in the middle of an atomic save, the target still holds the previous checkpoint
    and resume discovery ignores the stray temporary file."""
    from mask_grounding_dino.utils.atomic import atomic_torch_save

    target = tmp_path / "model_epoch_000_step_00002.pth"
    atomic_torch_save({"state_dict": {"w": torch.full((256, 256), 1.0)}}, target)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert _temp_files(tmp_path), "the new checkpoint is being written to a temporary file"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    kept = torch.load(target, map_location="cpu", weights_only=True)
    assert torch.equal(kept["state_dict"]["w"], torch.full((256, 256), 1.0))
    assert find_resume_checkpoint(str(tmp_path)) == str(target)
