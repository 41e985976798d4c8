"""The :class:`ImageSource` interface shared by folders, archives and remote folders.

Annotation paths are relative to the source. Because TAO's ``images.tar.gz`` holds a
top-level ``images/`` folder, a path may or may not start with ``images/``; sources try
``path``, then ``images/path`` (or ``path`` without its ``images/`` prefix).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ...errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
IMAGES_PREFIX = "images/"
#: EXIF orientations that rotate by 90 degrees (width and height swap once applied).
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def candidate_paths(relative_path: str) -> list[str]:
    """Relative paths to try for an annotation's path, most literal first (``/`` separators)."""
    rel = relative_path.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    if rel.startswith(IMAGES_PREFIX):
        return [rel, rel[len(IMAGES_PREFIX):]]
    return [rel, IMAGES_PREFIX + rel]


def decode_image(data: bytes | io.IOBase, where: str) -> Image.Image:
    """Decode to an RGB image, applying the EXIF orientation (as TAO's loader does)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{where}: cannot decode image ({exc.__class__.__name__}: {exc})") from exc


def header_size(data: bytes | io.IOBase, where: str) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, from the header only (no pixel decoding)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{where}: cannot read image header ({exc.__class__.__name__}: {exc})") from exc
    return (width, height) if orientation in _TRANSPOSING_ORIENTATIONS else (height, width)


class ImageSource(ABC):
    """Where a dataset's images come from. Paths are relative, ``/``-separated."""

    @abstractmethod
    def exists(self, relative_path: str) -> bool:
        """Whether the image is there (no decoding)."""

    @abstractmethod
    def read_bytes(self, relative_path: str) -> bytes:
        """The encoded file; :class:`DataError` naming the path when it is missing."""

    @abstractmethod
    def list_images(self) -> list[str]:
        """Relative paths of every image file (by extension), sorted."""

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and messages (never credentials)."""

    def read(self, relative_path: str) -> Image.Image:
        """The image as RGB, EXIF orientation applied."""
        return decode_image(self.read_bytes(relative_path), self._where(relative_path))

    def read_array(self, relative_path: str) -> np.ndarray:
        """The image as ``[H, W, 3]`` uint8 RGB."""
        return np.asarray(self.read(relative_path))

    def image_size(self, relative_path: str) -> tuple[int, int]:
        """``(height, width)`` as :meth:`read` would return it, reading only the header."""
        return header_size(self.read_bytes(relative_path), self._where(relative_path))

    def _where(self, relative_path: str) -> str:
        return f"{self.describe()}: {relative_path}"

    def _missing(self, relative_path: str) -> DataError:
        return DataError(f"image '{relative_path}' not found in {self.describe()} (also tried "
                         f"{' and '.join(repr(c) for c in candidate_paths(relative_path)[1:])})")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
