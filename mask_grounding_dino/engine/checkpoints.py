"""TAO-named checkpoints every ``checkpoint_interval`` and automatic resume.

Files in ``results_dir`` (TAO's names, Lightning's ``=`` written as ``_``):

    model_epoch_{epoch:03d}_step_{step:05d}.pth   one per interval (epoch or step units; TAO's
                                                  0-based epoch index: epoch_000 is the first)
    mask_gdino_model_latest.pth                   link to the newest one

With ``keep_newest_only`` (``train.checkpointer.replace_periodic``) only the newest periodic
checkpoint stays: each save deletes the older ones this callback wrote in this folder (its
list travels in the checkpoints, so a resumed run goes on pruning them), after the link
points at the new file.

``find_resume_checkpoint`` picks what training resumes from: an explicit
``resume_training_checkpoint_path`` (which must exist), else the latest checkpoint in
``results_dir`` (the link, or the newest file when the link is missing or dangling).
"""

from __future__ import annotations

import os
import re
import shutil

import lightning.pytorch as pl

from ..data import fileio
from ..errors import CheckpointError

LATEST_NAME = "mask_gdino_model_latest.pth"
_NAME_RE = re.compile(r"^model_epoch_(\d+)_step_(\d+)\.pth$")


def checkpoint_name(epoch: int, step: int) -> str:
    return f"model_epoch_{epoch:03d}_step_{step:05d}.pth"


def list_checkpoints(results_dir: str) -> list[tuple[int, int, str]]:
    """``(step, epoch, path)`` of every TAO-named checkpoint, oldest first."""
    if not results_dir or not os.path.isdir(results_dir):
        return []
    found = []
    for name in os.listdir(results_dir):
        match = _NAME_RE.match(name)
        if match:
            found.append((int(match.group(2)), int(match.group(1)), os.path.join(results_dir, name)))
    return sorted(found)


def find_resume_checkpoint(results_dir: str, explicit: str | None = None) -> str | None:
    if explicit:
        key = "train.resume_training_checkpoint_path"
        with fileio.spec_keys({explicit: key}):     # an unreachable URL names the key
            if not fileio.isfile(explicit):
                raise CheckpointError(f"{key}: '{explicit}' does not exist; give an existing checkpoint, or leave "
                                      "it empty to resume from the newest one in results_dir")
            return fileio.local_copy(explicit, key)     # a URL is fetched once into the cache
    latest = os.path.join(results_dir or "", LATEST_NAME)
    if os.path.isfile(latest):  # False for a link whose target is gone: fall back to the newest file
        return os.path.realpath(latest)
    found = list_checkpoints(results_dir)
    return found[-1][2] if found else None


def _point_latest(results_dir: str, target: str) -> None:
    """Atomically make ``mask_gdino_model_latest.pth`` refer to ``target``."""
    link = os.path.join(results_dir, LATEST_NAME)
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.symlink(os.path.basename(target), tmp)
    except OSError:  # file systems without symlinks: a copy is still correct
        shutil.copyfile(target, tmp)
    os.replace(tmp, link)


class TaoCheckpoint(pl.Callback):
    """Saves TAO-named checkpoints and keeps the loader's in-epoch position current.

    Args:
        results_dir: where checkpoints go.
        interval: save every ``interval`` epochs or steps.
        unit: ``"epoch"`` or ``"step"``.
        save_last: also save when training ends (if that step was not saved already).
        keep_newest_only: delete older periodic checkpoints of this run after each save.

    A resumed run never rewrites the checkpoint it started from, and a dry run
    (``train.is_dry_run``) writes none.
    """

    def __init__(self, results_dir: str, interval: int = 1, unit: str = "epoch", save_last: bool = True,
                 keep_newest_only: bool = False):
        self.results_dir = results_dir
        self.interval = max(1, int(interval))
        self.unit = unit
        self.save_last = save_last
        self.keep_newest_only = keep_newest_only
        self._saved_steps: set[int] = set()
        self._last_epoch: int | None = None  # epoch of the last trained batch
        self._written: list[str] = []  # names of the periodic checkpoints this run wrote in results_dir

    def state_dict(self) -> dict:
        return {"folder": os.path.realpath(self.results_dir), "written": list(self._written)}

    def load_state_dict(self, state_dict: dict) -> None:
        # A checkpoint of another folder (an explicit resume path) lists files this run did not write.
        if state_dict.get("folder") == os.path.realpath(self.results_dir):
            self._written = [n for n in state_dict.get("written", []) if _NAME_RE.match(n)]

    def _remember(self, path: str) -> None:
        name = os.path.basename(path)
        if _NAME_RE.match(name) and os.path.realpath(os.path.dirname(path)) == os.path.realpath(self.results_dir):
            self._written = [n for n in self._written if n != name] + [name]

    def _prune(self) -> None:
        """Delete every periodic checkpoint this run wrote except the newest (``latest`` points there)."""
        for name in self._written[:-1]:
            path = os.path.join(self.results_dir, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
        self._written = self._written[-1:]

    def _save(self, trainer: pl.Trainer, epoch: int | None = None) -> None:
        step = trainer.global_step
        if step in self._saved_steps or trainer.fast_dev_run:
            return  # a dry run must not leave a checkpoint that the real run would resume from
        epoch = trainer.current_epoch if epoch is None else epoch
        path = os.path.join(self.results_dir, checkpoint_name(epoch, step))
        trainer.save_checkpoint(path, weights_only=False)  # full state: a resume needs the optimiser too
        self._remember(path)
        if trainer.is_global_zero:
            _point_latest(self.results_dir, path)
            if self.keep_newest_only:
                self._prune()
        self._saved_steps.add(step)

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step > 0:
            # Resumed: the state at this step is the checkpoint we started from; never save it twice.
            self._saved_steps.add(trainer.global_step)
            if getattr(trainer, "ckpt_path", None):
                self._remember(os.path.abspath(trainer.ckpt_path))  # ours if it lies in this folder

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "batches_done"):
            loader.batches_done = batch_idx + 1
        self._last_epoch = trainer.current_epoch
        if self.unit == "step" and trainer.global_step % self.interval == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.unit == "epoch" and (trainer.current_epoch + 1) % self.interval == 0:
            # Saved as "end of epoch e": resuming from it starts epoch e + 1.
            self._save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        # Lightning has already counted the last epoch as completed here: name the
        # checkpoint after the epoch its last step belongs to, as the interval saves do.
        if self.save_last:
            self._save(trainer, epoch=self._last_epoch)
