"""Open dataset files that may be local paths or fsspec URLs (``s3://``, ``gs://``, ``http://``...).

Every reader goes through here, so a spec may point at ``s3://bucket/annotations_odvg.jsonl``
as easily as at a local file. Remote access uses fsspec's usual configuration:

* credentials: the standard environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
  ``AWS_PROFILE``, instance roles, ``~/.aws/credentials``), never the spec;
* a custom S3 endpoint (MinIO, Ceph, a local test server): ``AWS_ENDPOINT_URL`` (or the
  S3-only ``AWS_ENDPOINT_URL_S3``), read by botocore when the client is created; an fsspec
  config file (``~/.config/fsspec/s3.json`` with ``{"s3": {"endpoint_url": ...}}``) also works.

Messages show paths through :func:`redact`, which drops user info and query strings (signed
URLs carry secrets there), so nothing secret is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import DataError
from ..utils.atomic import atomic_open


def is_url(path: str) -> bool:
    """True for ``proto://...`` paths other than ``file://`` (those are local)."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """A local path with ``file://`` removed and ``~`` expanded."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    return os.path.expanduser(path)


def redact(path: str) -> str:
    """``path`` safe to print: URLs lose user info (``user:secret@``) and query strings."""
    if not is_url(path):
        return path
    parts = urlsplit(path)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def join(base: str, relative: str) -> str:
    """``base/relative`` for local paths (os separators) and URLs (always ``/``)."""
    if is_url(base):
        return base.rstrip("/") + "/" + relative.lstrip("/")
    return os.path.join(local_path(base), relative)


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] if is_url(path) else os.path.basename(local_path(path))


def url_to_fs(path: str):
    """``(filesystem, path inside it)`` for a URL or a local path."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(path if is_url(path) else local_path(path))
    except (ImportError, ValueError) as exc:
        raise DataError(f"{redact(path)}: no filesystem for this URL ({exc}); install the fsspec "
                        "backend for its protocol (e.g. s3fs for s3://, gcsfs for gs://)") from exc


def exists(path: str) -> bool:
    if not is_url(path):
        return os.path.exists(local_path(path))
    fs, inner = url_to_fs(path)
    try:
        return bool(fs.exists(inner))
    except OSError as exc:
        raise access_error(path, exc) from exc


def access_error(path: str, exc: BaseException) -> DataError:
    """A one-line DataError for a file that cannot be opened (never echoing secrets)."""
    shown = redact(path)
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{shown}: file not found")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{shown}: is a folder, expected a file")
    if isinstance(exc, PermissionError):
        return DataError(f"{shown}: permission denied")
    name = exc.__class__.__name__
    if "Credentials" in name:
        return DataError(f"{shown}: no credentials for this storage (set AWS_ACCESS_KEY_ID / "
                         "AWS_SECRET_ACCESS_KEY or AWS_PROFILE in the environment)")
    return DataError(f"{shown}: cannot open ({name}: {exc})")


@contextlib.contextmanager
def open_binary(path: str) -> Iterator[IO[bytes]]:
    """Open a local file or URL for reading bytes; errors become :class:`DataError`."""
    try:
        if is_url(path):
            import fsspec

            handle = fsspec.open(path, "rb").open()
        else:
            handle = open(local_path(path), "rb")
    except (OSError, ValueError) as exc:
        raise access_error(path, exc) from exc
    except Exception as exc:  # botocore's NoCredentialsError etc. are not OSErrors
        if exc.__class__.__module__.startswith(("botocore", "aiobotocore", "s3fs")):
            raise access_error(path, exc) from exc
        raise
    with handle:
        yield handle


@contextlib.contextmanager
def open_text(path: str) -> Iterator[IO[str]]:
    """Open a UTF-8 text file (``.gz`` decompressed) that may be local or a URL."""
    import gzip
    import io

    with open_binary(path) as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        text = io.TextIOWrapper(stream, encoding="utf-8")
        try:
            yield text
        finally:
            text.detach()


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line number starting at 1, line without its newline)`` for every line of ``path``."""
    with open_text(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"{redact(path)}: not UTF-8 text ({exc.reason})") from exc


def read_json(path: str) -> Any:
    """Parse a whole JSON file; a syntax error names its line and column."""
    with open_text(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(f"{redact(path)} line {exc.lineno} column {exc.colno}: invalid JSON "
                            f"({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{redact(path)}: not UTF-8 text ({exc.reason})") from exc


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` so that readers see the old file or the complete new one, never a part.

    Local: a temporary file in the same folder, fsynced, then ``os.replace``. URLs: the file
    is written locally first and uploaded only once complete (object stores publish an object
    when its upload finishes), so a failure leaves the old object in place.
    """
    if "w" not in mode:
        raise ValueError("atomic_write needs a write mode")
    if is_url(path):
        fs, inner = url_to_fs(path)
        with tempfile.TemporaryDirectory(prefix="mgd-upload-") as tmp_dir:
            tmp = os.path.join(tmp_dir, "part")
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
                yield handle
            try:
                fs.put_file(tmp, inner)
            except OSError as exc:
                raise access_error(path, exc) from exc
        return
    with atomic_open(local_path(path), "wb" if "b" in mode else "w") as handle:
        yield handle


def write_json(path: str, obj: Any, indent: int | None = None) -> None:
    """Atomically write ``obj`` as JSON (UTF-8, non-ASCII kept readable)."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")
