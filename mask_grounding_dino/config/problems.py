"""Collects spec problems, one line each, with where the offending key came from."""

from __future__ import annotations

from ..errors import SpecError

#: A key path inside the spec: section and key names, and list indices.
Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("dataset", "train_data_sources", 0, "image_dir")`` -> ``dataset.train_data_sources[0].image_dir``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<spec>"


class Problems:
    """All problems found in one spec, reported together.

    ``origins`` maps a key path to where it was written (``spec.yaml:12`` or
    ``override 'model.x=1'``); a problem is prefixed with the origin of the
    longest matching path, so the user sees which line or argument to fix.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.origins: dict[Path, str] = {}

    def set_origin(self, path: Path, origin: str) -> None:
        """Record that ``path`` (and everything below it) now comes from ``origin``."""
        size = len(path)
        for known in [p for p in self.origins if p[:size] == path]:
            del self.origins[known]
        self.origins[path] = origin

    def origin(self, path: Path) -> str | None:
        for size in range(len(path), -1, -1):
            found = self.origins.get(path[:size])
            if found:
                return found
        return None

    def add(self, path: Path, message: str) -> None:
        origin = self.origin(path)
        line = f"{format_path(path)}: {message}"
        self.lines.append(f"{origin}: {line}" if origin else line)

    def add_plain(self, message: str) -> None:
        self.lines.append(message)

    def raise_if_any(self) -> None:
        if self.lines:
            raise SpecError(self.lines)
