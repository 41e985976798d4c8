"""Lightning checkpoint I/O that is safe by default.

Saving is atomic (a SIGKILL during a save never leaves a truncated checkpoint);
loading never unpickles arbitrary objects (``weights_only=True``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO

from ..errors import CheckpointError
from ..model.checkpoint.io import load_failure
from ..utils.atomic import atomic_torch_save

#: What to do when a training checkpoint holds objects the safe loader refuses.
_RESUME_HINT = ("resume only from checkpoints this tool wrote, or start a new run from the file's weights with "
                "train.pretrained_model_path")


def load_checkpoint_file(path: str, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """``torch.load(path, weights_only=True)`` with a clear error for non-checkpoints.

    ``mmap``: map the tensors instead of reading them (cheap when only metadata or shapes are needed).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            obj = torch.load(path, map_location=map_location, weights_only=True)  # legacy format: no mmap
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a safe checkpoint"
        raise load_failure(path, exc, hint=_RESUME_HINT, placeholders=False) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


class AtomicCheckpointIO(CheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options: Any | None = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(os.fspath(path), map_location=map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        if os.path.exists(path):
            os.remove(path)
