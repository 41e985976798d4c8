"""Where each key of a loaded spec came from: a line of the spec file, or an override.

The command line gives its ``key=value`` arguments to :func:`load_spec` as overrides, so an
action can tell a key the user typed just now from one written in the file (see
``actions/folders.py``: a ``results_dir`` typed on the command line wins over an
``<action>.results_dir`` kept in the file).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A key path inside the spec: section and key names, and list indices.
Path = tuple[str | int, ...]

FILE = "file"
OVERRIDE = "override"


@dataclass(frozen=True)
class Origin:
    """``kind``: :data:`FILE` or :data:`OVERRIDE`; ``where``: ``spec.yaml:12`` or ``override 'a.b=1'``."""

    kind: str
    where: str


class SpecOrigins:
    """Key path -> :class:`Origin` for every key set by the file or by an override (defaults and a
    ``base`` dict have none). Setting a path replaces what was recorded below it."""

    def __init__(self) -> None:
        self._origins: dict[Path, Origin] = {}

    def add_file_lines(self, lines: dict[Path, str]) -> None:
        """Record the file's ``path -> "spec.yaml:12"`` map (every key and list item of the file)."""
        for path, where in lines.items():
            self._origins[tuple(path)] = Origin(FILE, where)

    def set(self, path: Path, origin: Origin) -> None:
        """Record ``origin`` for ``path`` and everything below it (an override replaces a section)."""
        size = len(path)
        for known in [p for p in self._origins if p[:size] == path]:
            del self._origins[known]
        self._origins[path] = origin

    def of(self, path: Path) -> Origin | None:
        """The origin of ``path``: its own, else that of the nearest section above it that was set."""
        for size in range(len(path), -1, -1):
            found = self._origins.get(tuple(path[:size]))
            if found is not None:
                return found
        return None

    def from_override(self, path: Path) -> bool:
        origin = self.of(path)
        return origin is not None and origin.kind == OVERRIDE

    def from_file(self, path: Path) -> bool:
        """True when the file itself holds ``path`` (not merely its section)."""
        origin = self._origins.get(tuple(path))
        return origin is not None and origin.kind == FILE
