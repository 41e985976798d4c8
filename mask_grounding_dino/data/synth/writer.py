"""Byte-reproducible writers: ``images.tar.gz``, jsonl and json files.

Archives carry no timestamps, owners or file names in the gzip header, members
are written in a fixed order, and every file is written atomically; so the
same content always gives the same bytes (with the same zlib/libjpeg).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from typing import Any

from ...utils.atomic import atomic_open


def _readable(path: str) -> None:
    """Dataset files are meant to be shared: rw-r--r-- (temp files start as 0600)."""
    os.chmod(path, 0o644)


def dumps_compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write_json(path: str, obj: Any, indent: int | None = None) -> None:
    with atomic_open(path, "w") as f:
        f.write(json.dumps(obj, indent=indent, ensure_ascii=False) if indent else dumps_compact(obj))
        f.write("\n")
    _readable(path)


def write_jsonl(path: str, rows: list[Any]) -> None:
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(dumps_compact(row))
            f.write("\n")
    _readable(path)


def write_text(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)
    _readable(path)


class TarGzWriter:
    """Streams files into ``<path>`` under the top folder ``images/`` (TAO's layout)."""

    def __init__(self, path: str, top: str = "images", also_folder: str | None = None):
        self.top = top.strip("/")
        self.also_folder = also_folder
        self.path = path
        self._ctx = atomic_open(path, "wb")
        handle = self._ctx.__enter__()
        # mtime=0 and an empty name keep the gzip header free of run-dependent bytes.
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=6)
        self._tar = tarfile.open(fileobj=self._gz, mode="w", format=tarfile.GNU_FORMAT)
        info = tarfile.TarInfo(self.top)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._tar.addfile(self._clean(info))

    @staticmethod
    def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{self.top}/{name}")
        info.size, info.mode = len(data), 0o644
        self._tar.addfile(self._clean(info), io.BytesIO(data))
        if self.also_folder:
            os.makedirs(self.also_folder, exist_ok=True)
            target = os.path.join(self.also_folder, name)
            with atomic_open(target, "wb") as f:
                f.write(data)
            _readable(target)

    def close(self, error: BaseException | None = None) -> None:
        self._tar.close()
        self._gz.close()
        if error is None:
            self._ctx.__exit__(None, None, None)
            _readable(self.path)
        else:
            self._ctx.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> "TarGzWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)
