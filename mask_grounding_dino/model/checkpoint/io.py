"""Reading and writing checkpoint files safely.

Reading never executes code from the file: ``torch.load(weights_only=True)``. Paths may be
URLs (``s3://...``): the file is fetched once into the cache (``data/fileio.local_copy``).
Training checkpoints (Lightning, TAO) may also pickle objects such as an
OmegaConf spec next to the weights; the weights-only unpickler refuses those.
We let it accept each such name as an inert placeholder (:class:`Opaque`, our
own class: it stores what it is given and runs nothing), so the tensors load
and the foreign objects are ignored. Functions of the modules torch never allowlists
(``os``, ``sys``...) cannot be stood in for: such a file is refused with one line that names
them and says how to re-save the weights (:func:`load_failure`), never with torch's advice
to retry with the unsafe unpickler.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickletools
import re
import zipfile
from typing import Any

import torch

from ...data import fileio
from ...errors import CheckpointError

_NOT_ALLOWED = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
#: What torch's weights-only unpickler names when it refuses a pickled object.
_REFUSED = (re.compile(r"GLOBAL (\S+) whose module \S+ is blocked"),
            _NOT_ALLOWED,
            re.compile(r"reduce for unrecognized function (.+?)(?: which belongs to .*)?$", re.M),
            re.compile(r"(?:new object|build) .*but got <class '([^']+)'>"))
#: Modules whose names the weights-only unpickler refuses outright (torch's block list).
_BLOCKED_MODULES = ("os", "posix", "nt", "sys")
#: What to do about a refused file (appended to the one-line message).
RESAVE_HINT = ("re-save only the weights where the file was made (torch.save({'state_dict': model.state_dict()}, "
               "path), or safetensors) and load that file")


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


def torch_load(path: str | os.PathLike, *, placeholders: bool = True, hint: str = RESAVE_HINT,
               map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` of a local file or URL: the one checkpoint reader.

    ``placeholders``: classes pickled beside the weights (a Lightning spec object...) load as
    inert :class:`Opaque` stand-ins, found in one pass over the pickle's opcodes
    (``torch.serialization.get_unsafe_globals_in_checkpoint``); functions of blocked modules never
    get one. False: any such object refuses the file. ``mmap``: map the tensors instead of reading
    them (cheap when only shapes or metadata are needed). Any failure is one line
    (:func:`load_failure`, ending with ``hint``).
    """
    local = fileio.local_copy(os.fspath(path))
    stand_ins = [(_placeholder(name), name) for name in (_unsafe_globals(local) if placeholders else [])
                 if name.split(".", 1)[0] not in _BLOCKED_MODULES]
    try:
        with torch.serialization.safe_globals(stand_ins):
            try:
                return torch.load(local, map_location=map_location, weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                # The legacy (pre-zip) format cannot be mapped: read it.
                return torch.load(local, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse: not a loadable checkpoint (never a traceback)
        raise load_failure(path, exc, hint=hint, placeholders=placeholders) from exc


def _unsafe_globals(local: str) -> list[str]:
    """Globals of ``local``'s pickle outside torch's allowlist (empty for a legacy-format or
    unreadable file: its load then fails with the name, reported by :func:`load_failure`)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(local))
    except Exception:  # noqa: BLE001 - not a zip checkpoint
        return []


def load_failure(path: str | os.PathLike, exc: BaseException, hint: str = RESAVE_HINT,
                 placeholders: bool = True) -> CheckpointError:
    """The one-line error for a ``torch.load(weights_only=True)`` failure on ``path``.

    A refused pickled object gives "holds pickled Python objects that are not safe to load
    (names); <hint>"; any other failure "not a readable PyTorch checkpoint (<torch's reason>)".
    torch's own advice (retry with the unsafe unpickler, allowlist the class) is never passed
    on: following it would run code from the file. ``placeholders``: the load stood in for
    foreign classes (:func:`torch_load`), so only blocked-module globals are unsafe.
    """
    names = refused_names(path, exc, placeholders)
    if names:
        return CheckpointError(f"{path}: the file holds pickled Python objects that are not safe to load "
                               f"({', '.join(names)}); {hint}")
    reason = _torch_reason(exc)
    return CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                           f"({exc.__class__.__name__}{': ' + reason if reason else ''})")


def refused_names(path: str | os.PathLike, exc: BaseException, placeholders: bool = True) -> list[str]:
    """The pickled globals a weights-only load of ``path`` refused: the one torch names in
    ``exc`` first, then every other one the file's pickle imports that would be refused too
    (blocked modules; with ``placeholders=False`` also anything outside torch's allowlist),
    so one message lists them all. Empty when ``exc`` is not a refusal."""
    text = str(exc)
    named = [m.group(1).strip() for pattern in _REFUSED for m in [pattern.search(text)] if m]
    if not named:
        return []
    allowed = set() if placeholders else _torch_allowed_globals()
    found = [g for g in pickled_globals(path)
             if g.split(".", 1)[0] in _BLOCKED_MODULES or (not placeholders and allowed and g not in allowed)]
    return list(dict.fromkeys(named[:1] + found))


def _torch_allowed_globals() -> set[str]:
    """Names torch's weights-only unpickler accepts (its built-in allowlist and the user's);
    empty when this torch does not expose them (then only the name torch reported is listed)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals, _get_user_allowed_globals
        return set(_get_allowed_globals()) | set(_get_user_allowed_globals())
    except Exception:  # noqa: BLE001 - a private API: optional
        return set()


def pickled_globals(path: str | os.PathLike) -> list[str]:
    """``module.name`` of every global the pickle of a torch zip checkpoint imports (in order,
    without duplicates); empty when the file is not a readable zip checkpoint. Reads opcodes
    only: nothing is unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return []
            data = archive.read(name)
    except (OSError, zipfile.BadZipFile, ValueError):
        return []
    out: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                out.append(_python3_name(*str(arg).split(" ", 1)))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                out.append(_python3_name(strings[-2], strings[-1]))
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                strings.append(arg)
    except Exception:  # noqa: BLE001 - a truncated pickle: report what was read
        pass
    return list(dict.fromkeys(out))


def _python3_name(module: str, name: str) -> str:
    """``module.name`` as unpickling resolves it (protocol 2 writes ``__builtin__.set``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _torch_reason(exc: BaseException) -> str:
    """The first line of ``exc`` that states a reason, without torch's advice about
    ``weights_only`` or allowlisting (which would load the file unsafely)."""
    text = str(exc).replace("\x1b[1m", "").replace("\x1b[0m", "")
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    for line in text.splitlines():
        line = re.sub(r"Weights only load failed\.?", "", line).strip(" .\t")
        if line and not re.search(r"weights_only|safe_globals|add_safe_globals|torch\.load to learn more|"
                                  r"arbitrary code execution|trust", line, re.I):
            return line[:200]
    return ""


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    local = fileio.local_copy(os.fspath(path))
    try:
        return load_file(local, device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
