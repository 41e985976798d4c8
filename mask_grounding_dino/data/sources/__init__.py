"""Image sources: a folder, an ``images.tar.gz`` (local or remote), or a remote folder.

Example::

    source = open_image_source("s3://bucket/train/images.tar.gz")
    image = source.read("images/0001.jpg")     # PIL RGB; "0001.jpg" resolves too
"""

from __future__ import annotations

from .. import fileio
from ...errors import DataError
from .archive import ArchiveSource, default_cache_dir, extract_archive, is_archive, safe_extract
from .base import IMAGE_EXTENSIONS, ImageSource, candidate_paths, is_image_name
from .folder import FolderSource
from .remote import RemoteSource

__all__ = ["open_image_source", "ImageSource", "FolderSource", "ArchiveSource", "RemoteSource",
           "extract_archive", "safe_extract", "default_cache_dir", "candidate_paths", "is_image_name",
           "IMAGE_EXTENSIONS"]


def open_image_source(image_dir: str, cache_dir: str | None = None) -> ImageSource:
    """The image source for a spec's ``image_dir``.

    * ``*.tar.gz`` / ``*.tgz`` / ``*.tar`` (local path or URL): extracted once into
      ``cache_dir`` (default ``$MASK_GROUNDING_DINO_CACHE`` or ``~/.cache/mask_grounding_dino``);
    * ``s3://...`` and other fsspec URLs: a remote folder;
    * anything else: a local folder.
    """
    if not isinstance(image_dir, str) or not image_dir.strip():
        raise DataError(f"image_dir must be a folder, an images.tar.gz or a URL, got {image_dir!r}")
    if is_archive(image_dir):
        return ArchiveSource(image_dir, cache_dir)
    if fileio.is_url(image_dir):
        return RemoteSource(image_dir)
    path = fileio.local_path(image_dir)
    if fileio.isfile(path):
        raise DataError(f"image_dir {image_dir} is a file; expected a folder of images or an "
                        "images.tar.gz / .tgz / .tar archive")
    return FolderSource(path)
