"""From the model path a user gave to a path that can be read, or one error that helps.

* a local file or folder: itself;
* a URL (``s3://...``): itself (the readers open it);
* a Hugging Face hub id of a whole detector: its folder in the hub cache (``hub.py``);
* anything else is missing: the error lists the model files that *are* in that folder
  (a typo or the wrong epoch is then obvious), or says that the folder is missing too and
  which model files its nearest existing parent holds.
"""

from __future__ import annotations

import os

from ...data import fileio
from ...errors import CheckpointError
from .hub import MODEL_SUFFIXES, download_hub_model, looks_like_hub_id

#: Model files listed per folder in an error before "... and N more".
_SHOWN = 12
#: Sub-folders looked into when a checkpoint's folder holds no model file (bounds the cost).
_SUBFOLDERS = 50


def locate_checkpoint(path: str | os.PathLike, key: str | None = None, what: str = "checkpoint") -> str:
    """``path`` as something the checkpoint readers open (see the module docstring).

    ``key`` (the spec key that named it) and ``what`` ("checkpoint", "ONNX file") word the
    error. Raises :class:`CheckpointError` when nothing is there.
    """
    text = os.fspath(path)
    if fileio.is_url(text):
        with fileio.spec_keys({text: key} if key else {}):
            if fileio.exists(text):
                return text
        raise CheckpointError(missing_model_message(text, key, what))
    if fileio.exists(text):
        return fileio.local_path(text)
    if what == "checkpoint" and looks_like_hub_id(text):
        return download_hub_model(text, key)
    raise CheckpointError(missing_model_message(text, key, what))


def model_files(folder: str) -> list[str]:
    """Names of the model files in ``folder``: checkpoint and ONNX files, Hugging Face folders (``name/``)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.is_file() and entry.name.lower().endswith(MODEL_SUFFIXES):
            found.append(entry.name)
        elif entry.is_dir() and os.path.isfile(os.path.join(entry.path, "config.json")):
            found.append(entry.name + "/")
    return found


def _names(names: list[str]) -> str:
    more = f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _holds(folder: str, shown: str, look_inside: bool) -> str:
    """What ``folder`` (written ``shown``) holds; when nothing and ``look_inside``, its sub-folders
    that hold model files (e.g. ``<results_dir>/train``)."""
    names = model_files(folder)
    if names:
        return f"'{shown}' holds: {_names(names)}"
    try:
        subfolders = sorted(e.name for e in os.scandir(folder) if e.is_dir())[:_SUBFOLDERS] if look_inside else []
    except OSError:
        subfolders = []
    inside = [(name, found) for name in subfolders if (found := model_files(os.path.join(folder, name)))]
    if not inside:
        return f"'{shown}' holds no model file (.pth, .ckpt, .safetensors, .onnx or a Hugging Face folder)"
    return f"'{shown}' holds no model file, but " + "; ".join(
        f"'{os.path.join(shown, name)}' holds: {_names(found)}" for name, found in inside[:3])


def missing_model_message(path: str, key: str | None = None, what: str = "checkpoint") -> str:
    """One line: ``path`` is missing, and what is in its folder (or that the folder is missing too);
    prefixed with ``key``, the spec key that named it, when given."""
    where = f"{key}: " if key else ""
    if fileio.is_url(path):
        return f"{where}{what} '{fileio.redact(path)}' does not exist"
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    shown = os.path.dirname(path) or "."
    if os.path.isdir(folder):
        return f"{where}{what} '{path}' does not exist; {_holds(folder, shown, look_inside=True)}"
    parent = folder
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    parent_shown = parent if os.path.isabs(os.path.expanduser(path)) else os.path.relpath(parent)
    return (f"{where}{what} '{path}' does not exist, nor does its folder '{shown}' (the nearest folder that "
            f"exists is '{parent_shown}'); {_holds(parent, parent_shown, look_inside=False)}")
