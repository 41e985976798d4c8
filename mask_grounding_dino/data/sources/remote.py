"""Images in a remote folder: ``s3://bucket/prefix``, ``gs://...``, any fsspec URL.

Credentials and endpoints come from the environment / fsspec configuration (see
``data/fileio.py``). The folder is listed once (on the first ``exists`` / ``list_images``),
so checking a few hundred thousand paths costs one paginated listing, not one request each.
"""

from __future__ import annotations

from .. import fileio
from .base import ImageSource, candidate_paths, header_size, is_image_name

#: Bytes fetched to read an image header; a JPEG whose header is further in is read whole.
_HEADER_BYTES = 256 << 10


class RemoteSource(ImageSource):
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.base = fileio.url_to_fs(self.url)
        self.base = self.base.rstrip("/")
        self._listing: set[str] | None = None

    def _listed(self) -> set[str]:
        """Relative paths of every file under the folder (one listing, then cached)."""
        if self._listing is None:
            try:
                self.fs.invalidate_cache(self.base)
                found = self.fs.find(self.base)
            except Exception as exc:  # credentials, endpoint, permissions
                raise fileio.access_error(self.url, exc) from exc
            prefix = self.base + "/"
            self._listing = {p[len(prefix):] for p in found if p.startswith(prefix)}
        return self._listing

    def _resolve(self, relative_path: str) -> str | None:
        listing = self._listed()
        for rel in candidate_paths(relative_path):
            if rel in listing:
                return f"{self.base}/{rel}"
        return None

    def exists(self, relative_path: str) -> bool:
        return self._resolve(relative_path) is not None

    def _fetch(self, relative_path: str, end: int | None = None) -> bytes:
        # Without a listing yet, try the paths directly (reading one image must not list a
        # bucket of a million objects).
        paths = ([self._resolve(relative_path)] if self._listing is not None
                 else [f"{self.base}/{rel}" for rel in candidate_paths(relative_path)])
        for path in paths:
            if path is None:
                break
            try:
                return self.fs.cat_file(path, start=0 if end else None, end=end)
            except FileNotFoundError:
                continue
            except Exception as exc:
                raise fileio.access_error(f"{self.url}/{relative_path}", exc) from exc
        raise self._missing(relative_path)

    def read_bytes(self, relative_path: str) -> bytes:
        return self._fetch(relative_path)

    def image_size(self, relative_path: str) -> tuple[int, int]:
        head = self._fetch(relative_path, end=_HEADER_BYTES)
        try:
            return header_size(head, self._where(relative_path))
        except Exception:
            return super().image_size(relative_path)

    def list_images(self) -> list[str]:
        return sorted(p for p in self._listed() if is_image_name(p))

    def describe(self) -> str:
        return f"remote folder {fileio.redact(self.url)}"

    def __getstate__(self):
        # DataLoader workers get a copy; the listing is rebuilt lazily there if needed.
        state = dict(self.__dict__)
        state["_listing"] = None
        return state
