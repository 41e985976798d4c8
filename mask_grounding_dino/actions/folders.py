"""Where each action writes (TAO's rule), and what a ``results_dir`` typed on the command line means.

An action writes to its own ``<action>.results_dir`` when that is set, else to
``<results_dir>/<action>`` (training too: ``<results_dir>/train``). When the command line
gives ``results_dir=...`` while the spec file keeps an ``<action>.results_dir``, the command
line wins: it is what the user asked for last, and job runners point runs elsewhere this way.
"""

from __future__ import annotations

import os

from ..config.origins import SpecOrigins
from ..errors import SpecError
from ..utils.log import get_logger

log = get_logger(__name__)

#: Actions that write a results folder in this version, in workflow order.
FOLDER_ACTIONS = ("train", "evaluate", "inference", "export")
#: Spec sections with their own ``results_dir``.
_SECTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize")
#: Where an action without any results_dir writes (train refuses instead: checkpoints need a chosen place).
_FALLBACK_ROOT = "results"


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def action_folder(cfg, action: str) -> str:
    """The absolute folder ``action`` writes to (nothing is created)."""
    section = getattr(cfg, action, None)
    own = getattr(section, "results_dir", "") if section is not None else ""
    if own:
        return _absolute(own)
    if cfg.results_dir:
        return _absolute(os.path.join(cfg.results_dir, action))
    if action == "train":
        raise SpecError("results_dir: required for train; set results_dir (training writes to "
                        "<results_dir>/train) or train.results_dir")
    return _absolute(os.path.join(_FALLBACK_ROOT, action))


def command_line_wins(cfg, origins: SpecOrigins, action: str) -> str | None:
    """Apply "a results_dir typed on the command line wins" to ``cfg`` (in place).

    When ``results_dir`` came from an override and the spec file sets ``<section>.results_dir``
    (not overridden too), that key is cleared, so every action writes under the new
    ``results_dir``. Returns the one-line notice to print, or None when nothing was ignored.
    """
    if not origins.from_override(("results_dir",)):
        return None
    ignored = []
    for name in _SECTIONS:
        section = getattr(cfg, name, None)
        key = (name, "results_dir")
        if section is not None and section.results_dir and origins.from_file(key):
            ignored.append((name, origins.of(key).where))
            section.results_dir = ""
    if not ignored:
        return None
    first = next((item for item in ignored if item[0] == action), ignored[0])
    others = [f"{name}.results_dir" for name, _ in ignored if name != first[0]]
    also = f" (and {', '.join(others)} there)" if others else ""
    return (f"notice: results_dir={cfg.results_dir} from the command line wins: {first[0]}.results_dir in "
            f"{first[1]}{also} is ignored; to choose the {first[0]} folder itself, pass {first[0]}.results_dir=FOLDER")


def folders_comment(cfg, action: str, notice: str | None = None) -> str:
    """YAML comment lines for ``--print-spec``: the folder each action would write to."""
    lines = [f"# Folders (absolute) the actions of this spec write to; `{action}` is the one asked for:"]
    width = max(len(name) for name in FOLDER_ACTIONS)
    for name in FOLDER_ACTIONS:
        try:
            folder = action_folder(cfg, name)
        except SpecError:
            folder = "(none: set results_dir or train.results_dir)"
        state = ""
        if name == action and not folder.startswith("("):
            state = "  <- exists: resumes there if consistent" if name == "train" and _has_files(folder) \
                else "  <- exists" if _has_files(folder) else "  <- new folder"
        lines.append(f"#   {name.ljust(width)}  {folder}{state}")
    if notice:
        lines.append(f"# {notice}")
    return "\n".join(lines) + "\n"


def _has_files(folder: str) -> bool:
    return os.path.isdir(folder) and bool(os.listdir(folder))


def announce(action: str, folder: str) -> None:
    """The first line of an action: where it writes and whether the folder is new."""
    state = "existing folder: files of the same name are replaced" if _has_files(folder) else "new folder"
    log.info(f"{action}: writing to {folder} ({state})")
