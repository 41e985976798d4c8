"""A job's ``log.txt``: the supervisor's lines and the action's output, every attempt appended."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

_ERROR_LINE = re.compile(r"^error: (.+)$")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*)$")
_MAX_LINES, _MAX_CHARS = 3, 300


def _read_bytes(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return b""


def _read_from(path: str, offset: int) -> str:
    return _read_bytes(path, offset).decode("utf-8", errors="replace")


def failure_lines(path: str, offset: int = 0) -> list[str]:
    """Why the action failed, from its output after ``offset``: its ``error: ...`` lines (a user
    error), else the last exception line of a traceback; at most 3, each shortened."""
    lines = [line.strip() for line in _read_from(path, offset).splitlines()]
    errors = [m.group(1) for line in lines if (m := _ERROR_LINE.match(line))]
    if not errors:
        errors = [m.group(1) for line in lines if (m := _EXCEPTION_LINE.match(line))][-1:]
    return [e if len(e) <= _MAX_CHARS else e[:_MAX_CHARS - 3] + "..." for e in errors[-_MAX_LINES:]]


def follow(path: str, finished: Callable[[], bool], poll: float = 0.5) -> Iterator[str]:
    """The log's text so far, then what is appended, until ``finished()`` (checked between
    reads) is true and nothing more came."""
    offset = 0
    while True:
        done = finished()
        chunk = _read_bytes(path, offset)
        if chunk:
            offset += len(chunk)
            yield chunk.decode("utf-8", errors="replace")
        elif done:
            return
        else:
            time.sleep(poll)
