"""Collects spec problems, one line each, with where the offending key came from."""

from __future__ import annotations

from ..errors import SpecError
from .origins import Path, SpecOrigins

__all__ = ["Path", "Problems", "format_path"]


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

    ``origins`` records where each key path was written (``spec.yaml:12`` or
    ``override 'model.x=1'``); a problem is prefixed with the origin of the
    longest matching path, so the user sees which line or argument to fix.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.origins = SpecOrigins()

    def origin(self, path: Path) -> str | None:
        found = self.origins.of(path)
        return found.where if found else None

    def add(self, path: Path, message: str) -> None:
        origin = self.origin(path)
        line = f"{format_path(path)}: {message}"
        self.lines.append(f"{origin}: {line}" if origin else line)

    def add_plain(self, message: str) -> None:
        self.lines.append(message)

    def raise_if_any(self) -> None:
        if self.lines:
            raise SpecError(self.lines)
