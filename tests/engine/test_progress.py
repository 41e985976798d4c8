"""Plain progress lines for logs."""

from __future__ import annotations

import time
from types import SimpleNamespace

from mask_grounding_dino.engine.progress import ProgressBar, ProgressLines, epoch_label


def fake_trainer(step: int, total: int = 800):
    return SimpleNamespace(global_step=step, estimated_stepping_batches=total, current_epoch=1, max_epochs=8,
                           progress_bar_metrics={"train_loss": 12.345, "lr": 5e-4}, is_global_zero=True)


def test_progress_lines_print_epoch_step_loss_lr_and_time_left(capsys):
    lines = ProgressLines(every_s=0.0)
    lines.on_train_start(fake_trainer(0), None)
    lines._t0 = time.time() - 100.0            # 100 steps in 100 s -> 700 steps left = 11:40
    lines.on_train_batch_end(fake_trainer(100), None, None, None, 99)
    out = capsys.readouterr().out.strip()
    assert out.startswith("epoch 2/8  step 100/800  loss 12.35  lr 0.0005  left 11:")
    # No line before every_s has passed (logs get one line per ~30 s, not one per step).
    quiet = ProgressLines(every_s=3600.0)
    quiet.on_train_start(fake_trainer(0), None)
    quiet.on_train_batch_end(fake_trainer(1), None, None, None, 0)
    assert capsys.readouterr().out == ""
    quiet.on_train_epoch_end(fake_trainer(100), None)     # but always at the end of an epoch
    assert "step 100/800" in capsys.readouterr().out


def test_the_bar_counts_epochs_as_the_lines_do():
    """Lightning's bar said "Epoch 1" in the epoch the lines call "epoch 2/8"."""
    from tqdm import tqdm

    trainer = SimpleNamespace(**vars(fake_trainer(100)), num_training_batches=100, max_steps=-1)
    bar = ProgressBar()
    bar._trainer = trainer
    bar.train_progress_bar = tqdm(total=100, disable=True)
    bar.on_train_epoch_start(trainer)
    assert epoch_label(trainer) == "epoch 2/8" and bar.train_progress_bar.desc == "Epoch 2/8: "  # tqdm adds ": "

