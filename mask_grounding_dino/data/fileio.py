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

Readers that need a real local file (``torch.load`` of a zip checkpoint, onnxruntime, a
Hugging Face folder) call :func:`local_copy`: a URL is fetched once into the project's cache
(:func:`cache_dir`), keyed by the object's URL, size and ETag, so a changed object is fetched
again and an unchanged one never is.

This module is the only place in the package that opens, lists or probes a location a user
gave (``tests/data/test_fileio_only.py`` checks the package source for it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
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


def cache_dir() -> str:
    """The project's cache folder: ``$MASK_GROUNDING_DINO_CACHE`` or ``~/.cache/mask_grounding_dino``."""
    return os.environ.get("MASK_GROUNDING_DINO_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "mask_grounding_dino")


def _is_storage_error(exc: BaseException) -> bool:
    """Errors of the storage clients that are not ``OSError`` (botocore's NoCredentialsError, ...)."""
    return isinstance(exc, (OSError, ValueError)) or \
        exc.__class__.__module__.startswith(("botocore", "aiobotocore", "s3fs", "gcsfs", "aiohttp"))


@contextlib.contextmanager
def _storage_errors(path: str, key: str | None = None) -> Iterator[None]:
    """Turn a failure to reach ``path`` into a one-line :class:`DataError`."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        if _is_storage_error(exc):
            raise access_error(path, exc, key) from exc
        raise


def _probe(path: str, local, remote) -> bool:
    """``local(local path)`` or ``remote(filesystem, path inside it)``; storage errors: one line."""
    if not is_url(path):
        return bool(local(local_path(path)))
    fs, inner = url_to_fs(path)
    with _storage_errors(path):
        return bool(remote(fs, inner))


def _remote_isfile(fs, inner: str) -> bool:
    try:   # not fs.isfile: it answers False for missing credentials too
        return fs.info(inner).get("type") == "file"
    except FileNotFoundError:
        return False


def exists(path: str) -> bool:
    """Whether a file or folder is at ``path`` (a bucket that does not exist: ``False``)."""
    return _probe(path, os.path.exists, lambda fs, inner: fs.exists(inner))


def isfile(path: str) -> bool:
    return _probe(path, os.path.isfile, _remote_isfile)


def isdir(path: str) -> bool:
    """A local folder, or a URL prefix that holds objects (object stores have no empty folders)."""
    return _probe(path, os.path.isdir, lambda fs, inner: fs.isdir(inner))


def list_files(folder: str) -> list[str]:
    """Relative ``/``-separated paths of every file under ``folder`` (recursively), sorted."""
    if not is_url(folder):
        root = local_path(folder)
        out = []
        for current, dirs, files in os.walk(root):
            dirs.sort()
            rel_dir = os.path.relpath(current, root)
            out += [name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/") for name in files]
        return sorted(out)
    fs, inner = url_to_fs(folder)
    inner = inner.rstrip("/")
    with _storage_errors(folder):
        fs.invalidate_cache(inner)
        found = fs.find(inner)
    return sorted(p[len(inner) + 1:] for p in found if p.startswith(inner + "/"))


def identity(path: str, key: str | None = None) -> str:
    """A string that changes when the file at ``path`` changes: where it is + size + mtime
    (local) or ETag (URLs). Raises :class:`DataError` when nothing is there."""
    if not is_url(path):
        local = os.path.abspath(local_path(path))
        with _storage_errors(path, key):
            st = os.stat(local)
        return f"{local}|{st.st_size}|{st.st_mtime_ns}"
    kind, size, tag = _remote_stat(path, key)
    return f"{path}|{kind}|{size}|{tag}"


def _remote_stat(path: str, key: str | None) -> tuple[str, Any, Any]:
    """``(type, size, tag)`` of a URL; a folder's tag covers every file under it."""
    fs, inner = url_to_fs(path)
    with _storage_errors(path, key):
        info = fs.info(inner)
        if info.get("type") != "directory":
            return str(info.get("type")), info.get("size"), _tag(info)
        listing = sorted((name, _tag(entry), entry.get("size")) for name, entry in fs.find(inner, detail=True).items())
    return "directory", None, hashlib.sha256(repr(listing).encode()).hexdigest()


def _tag(info: dict) -> Any:
    return info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")


def local_copy(path: str, key: str | None = None) -> str:
    """A local path holding the file (or folder) at ``path``, for readers that need one.

    Local paths come back as they are (after checking that something is there). A URL is
    fetched once into ``<cache>/remote/<hash of URL, size, ETag>/<name>``: written under a
    temporary name and renamed when complete, under a lock, so concurrent processes share
    one download and never read half a file. Older versions of an object stay in the cache
    until it is cleared. ``key``: the spec key, for messages.
    """
    if not is_url(path):
        local = local_path(path)
        if not os.path.exists(local):
            raise access_error(path, FileNotFoundError(path), key)
        return local
    kind, size, tag = _remote_stat(path, key)
    stamp = f"{path}|{kind}|{size}|{tag}"
    folder = os.path.join(cache_dir(), "remote", hashlib.sha256(stamp.encode()).hexdigest()[:32])
    target = os.path.join(folder, basename(path) or "file")
    if os.path.exists(target):
        return target
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {folder} ({exc}); set MASK_GROUNDING_DINO_CACHE to a "
                        "writable place") from exc
    with file_lock(target + ".lock"):
        if not os.path.exists(target):
            _download(path, target, is_folder=kind == "directory", key=key)
    return target


def _download(path: str, target: str, is_folder: bool, key: str | None) -> None:
    fs, inner = url_to_fs(path)
    tmp = tempfile.mkdtemp(prefix=".part-", dir=os.path.dirname(target))
    try:
        part = os.path.join(tmp, "data")
        with _storage_errors(path, key):
            if is_folder:
                fs.get(inner.rstrip("/") + "/", part + "/", recursive=True)
            else:
                fs.get_file(inner, part)
        os.replace(part, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(lock_path: str) -> Iterator[None]:
    """An exclusive advisory lock on ``lock_path`` (POSIX ``flock``; a no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic renames still keep readers correct
        yield
        return
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def access_error(path: str, exc: BaseException, key: str | None = None) -> DataError:
    """A one-line DataError for a file that cannot be opened (never echoing secrets);
    ``key``: the spec key that named ``path``, put first when given. The error keeps the
    location in ``.path`` so :func:`spec_keys` can name the key later."""
    error = _access_error(path, exc, key)
    error.path = path
    return error


@contextlib.contextmanager
def spec_keys(keys: dict[str, str]) -> Iterator[None]:
    """Name the spec key of a location that cannot be read: ``keys`` maps locations (as the
    spec gives them) to their keys; a :class:`DataError` from :func:`access_error` about one
    of them gets the key in front (``dataset.val_data_sources.json_file: s3://...: file not found``)."""
    try:
        yield
    except DataError as exc:
        key = keys.get(getattr(exc, "path", None) or "")
        if not key or str(exc).startswith(key + ":"):
            raise
        error = DataError([f"{key}: {line}" for line in exc.problems])
        error.path = exc.path
        raise error from exc


def _access_error(path: str, exc: BaseException, key: str | None) -> DataError:
    shown = f"{key}: {redact(path)}" if key else redact(path)
    if isinstance(exc, FileNotFoundError):
        if "bucket does not exist" in str(exc):
            bucket = urlsplit(path).hostname if is_url(path) else None
            return DataError(f"{shown}: the bucket {bucket!r} does not exist (or is not visible with these "
                             "credentials)")
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
def open_binary(path: str, key: str | None = None) -> Iterator[IO[bytes]]:
    """Open a local file or URL for reading bytes; errors become :class:`DataError`."""
    with _storage_errors(path, key):
        if is_url(path):
            import fsspec

            handle = fsspec.open(path, "rb").open()
        else:
            handle = open(local_path(path), "rb")
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
