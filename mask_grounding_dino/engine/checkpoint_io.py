"""Lightning checkpoint I/O that is safe by default.

Saving is atomic (a SIGKILL during a save never leaves a truncated checkpoint);
loading never unpickles arbitrary objects (``weights_only=True``).
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.plugins.io import CheckpointIO

from ..errors import CheckpointError
from ..model.checkpoint.io import torch_load
from ..utils.atomic import atomic_torch_save

#: What to do when a training checkpoint holds objects the safe loader refuses.
_RESUME_HINT = ("resume only from checkpoints this tool wrote, or start a new run from the file's weights with "
                "train.pretrained_model_path")


def load_checkpoint_file(path: str, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """A training checkpoint to resume from (``model.checkpoint.io.torch_load``, refusing any
    pickled object: resuming restores every entry). ``mmap``: see ``torch_load``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    obj = torch_load(path, placeholders=False, hint=_RESUME_HINT, map_location=map_location, mmap=mmap)
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
