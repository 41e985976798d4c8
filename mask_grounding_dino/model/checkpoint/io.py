"""Reading and writing checkpoint files safely.

Reading never executes code from the file: ``torch.load(weights_only=True)``. Paths may be
URLs (``s3://...``): the file is fetched once into the cache (``data/fileio.local_copy``).
Training checkpoints (Lightning, TAO) may also pickle objects such as an
OmegaConf spec next to the weights; the weights-only unpickler refuses those.
We let it accept each such name as an inert placeholder (:class:`Opaque`, our
own class: it stores what it is given and runs nothing), so the tensors load
and the foreign objects are ignored.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ...data import fileio
from ...errors import CheckpointError

_NOT_ALLOWED = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")


class Opaque:
    """Inert stand-in for a pickled object of a class we do not load."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):  # objects rebuilt through SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):            # objects rebuilt through APPENDS
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("values", []).extend(values)


def _placeholder(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (Opaque,), {"__module__": name.rsplit(".", 1)[0]})


def torch_load(path: str | os.PathLike, max_foreign: int = 64) -> Any:
    """``torch.load(path, weights_only=True)``, with foreign classes read as placeholders."""
    local = fileio.local_copy(os.fspath(path))
    extra: list = []
    for _ in range(max_foreign + 1):
        try:
            with torch.serialization.safe_globals(extra):
                return torch.load(local, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            match = _NOT_ALLOWED.search(str(exc))
            if not match:
                raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from exc
            name = match.group(1)
            extra.append((_placeholder(name), name))
        except Exception as exc:  # any other failure to parse: not a checkpoint (never a traceback)
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                                  f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    raise CheckpointError(f"{path}: too many foreign objects pickled beside the weights")


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    local = fileio.local_copy(os.fspath(path))
    try:
        return load_file(local, device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Write to a temporary file beside ``path``, flush to disk, then rename over it:
    a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
