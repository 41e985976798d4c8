"""Images in a local folder."""

from __future__ import annotations

import os

from .. import fileio
from ...errors import DataError
from .base import ImageSource, candidate_paths, decode_image, header_size, is_image_name


class FolderSource(ImageSource):
    """A local folder. Absolute annotation paths are used as they are (TAO joins paths with
    ``os.path.join``, which keeps absolute ones), relative ones resolve under ``root``."""

    def __init__(self, root: str, label: str | None = None):
        self.root = os.path.abspath(os.path.expanduser(root))
        self._label = label or f"folder {self.root}"
        if not fileio.isdir(self.root):
            raise DataError(f"image folder {root} does not exist")

    def resolve(self, relative_path: str) -> str | None:
        """The file path of an image, or ``None`` when it is not there."""
        if os.path.isabs(relative_path):
            return relative_path if fileio.isfile(relative_path) else None
        for rel in candidate_paths(relative_path):
            path = os.path.join(self.root, rel)
            if fileio.isfile(path):
                return path
        return None

    def exists(self, relative_path: str) -> bool:
        return self.resolve(relative_path) is not None

    def _path(self, relative_path: str) -> str:
        path = self.resolve(relative_path)
        if path is None:
            raise self._missing(relative_path)
        return path

    def read_bytes(self, relative_path: str) -> bytes:
        with fileio.open_binary(self._path(relative_path)) as handle:
            return handle.read()

    def read(self, relative_path: str):
        # Decoding from the open file avoids holding the encoded bytes and the pixels at once.
        with fileio.open_binary(self._path(relative_path)) as handle:
            return decode_image(handle, self._where(relative_path))

    def image_size(self, relative_path: str) -> tuple[int, int]:
        with fileio.open_binary(self._path(relative_path)) as handle:
            return header_size(handle, self._where(relative_path))

    def list_images(self) -> list[str]:
        return [path for path in fileio.list_files(self.root) if is_image_name(path)]

    def describe(self) -> str:
        return self._label
