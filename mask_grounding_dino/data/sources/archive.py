"""``images.tar.gz`` (local or remote): extracted once into a cache keyed by its content.

Cache layout (``$MASK_GROUNDING_DINO_CACHE`` or ``~/.cache/mask_grounding_dino``)::

    archives/<sha256 of the archive>/    the extracted tree (e.g. images/0001.jpg)
    archives/keys/<hash of where+stat>   the sha256 of an archive last seen with that
                                         path, size and mtime (ETag for URLs): a second run
                                         neither re-hashes, re-downloads nor re-extracts

Safety: every member is checked before it is written. Absolute names, ``..`` components,
symbolic or hard links pointing outside the extraction folder, and device / FIFO members
make the whole extraction fail with a :class:`DataError` naming the member. Extraction goes
into a temporary folder inside the cache, which is renamed into place only when complete,
so concurrent processes (DataLoader workers, several jobs) never see a half-extracted tree;
a file lock makes the second process wait for the first instead of extracting again.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib

from .. import fileio
from ...errors import DataError
from .folder import FolderSource

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CHUNK = 8 << 20


def is_archive(path: str) -> bool:
    return path.lower().rstrip("/").endswith(ARCHIVE_SUFFIXES)


def default_cache_dir() -> str:
    return fileio.cache_dir()


class ArchiveSource(FolderSource):
    """Images of a tar archive, read from its extracted copy in the cache."""

    def __init__(self, archive: str, cache_dir: str | None = None):
        self.archive = archive
        root = extract_archive(archive, cache_dir)
        super().__init__(root, label=f"archive {fileio.redact(archive)} (extracted at {root})")


def extract_archive(archive: str, cache_dir: str | None = None) -> str:
    """The folder holding the extracted ``archive``; extracts on the first call only."""
    cache = os.path.join(os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir())), "archives")
    try:
        os.makedirs(os.path.join(cache, "keys"), exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the archive cache {cache} ({exc.__class__.__name__}: {exc}); set "
                        "MASK_GROUNDING_DINO_CACHE (or pass a cache folder) to a writable place") from exc
    key_file = os.path.join(cache, "keys", _identity_key(archive))
    digest = _read_small(key_file)
    if digest and os.path.isdir(os.path.join(cache, digest)):
        return os.path.join(cache, digest)
    with fileio.file_lock(os.path.join(cache, "keys", ".lock-" + os.path.basename(key_file))):
        local, downloaded = _local_copy(archive, cache)
        try:
            digest = _sha256(local) if not downloaded else downloaded
            target = os.path.join(cache, digest)
            with fileio.file_lock(target + ".lock"):
                if not os.path.isdir(target):
                    _extract_into(local, target, archive)
        finally:
            if downloaded:
                os.unlink(local)
        _write_small(key_file, digest)
    return target


def _identity_key(archive: str) -> str:
    """A name for "this archive as it is now": path + size + mtime (URL + ETag + size)."""
    return hashlib.sha256(fileio.identity(archive, key="image archive").encode()).hexdigest()


def _local_copy(archive: str, cache: str) -> tuple[str, str | None]:
    """``(local file, sha256 if it was downloaded else None)``; remote archives are streamed to
    the cache once, hashing on the way."""
    if not fileio.is_url(archive):
        return fileio.local_path(archive), None
    folder = os.path.join(cache, "downloads")
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, fileio.open_binary(archive) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, digest.hexdigest()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with fileio.open_binary(path) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_into(local: str, target: str, shown: str) -> None:
    """Extract ``local`` into a temporary sibling of ``target``, then rename it into place."""
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(target))
    try:
        safe_extract(local, tmp, shown=fileio.redact(shown))
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # not "someone else finished first"
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def safe_extract(archive_file: str, dest: str, shown: str | None = None) -> int:
    """Extract a tar (any compression) into ``dest`` after checking each member; returns the
    number of members. Raises :class:`DataError` naming the first unsafe member."""
    shown = shown or archive_file
    dest_real = os.path.realpath(dest)
    count = 0
    try:
        with fileio.open_binary(archive_file) as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for member in tar:
                problem = member_problem(member, dest_real)
                if problem:
                    raise DataError(f"{shown}: refusing to extract member '{member.name}': {problem}; "
                                    "nothing from this archive was used")
                # The 'data' filter re-checks the same rules inside tarfile (defence in depth)
                # and drops set-uid bits and ownership.
                tar.extract(member, dest_real, filter="data")
                count += 1
    except tarfile.FilterError as exc:  # tarfile's own check caught what ours let through
        raise DataError(f"{shown}: refusing to extract member '{exc.tarinfo.name}': {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{shown}: not a readable tar archive ({exc.__class__.__name__}: {exc})") from exc
    except OSError as exc:
        raise DataError(f"{shown}: cannot extract into {dest} ({exc.__class__.__name__}: {exc}); check free "
                        "space and permissions, or choose another cache folder") from exc
    return count


def member_problem(member: tarfile.TarInfo, dest_real: str) -> str | None:
    """Why ``member`` may not be extracted into ``dest_real`` (``None`` when it is safe)."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path (archives must hold relative paths)"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' in the path would write outside the extraction folder"
    if not _inside(os.path.join(dest_real, name), dest_real):
        return "resolves outside the extraction folder"
    if member.issym():
        link = member.linkname
        if os.path.isabs(link) or not _inside(os.path.join(dest_real, posixpath.dirname(name), link), dest_real):
            return f"symbolic link to '{link}' points outside the extraction folder"
    if member.islnk():
        link = member.linkname
        if os.path.isabs(link) or ".." in link.split("/") or not _inside(os.path.join(dest_real, link), dest_real):
            return f"hard link to '{link}' points outside the extraction folder"
    if member.isdev() or member.isfifo():
        return "device or FIFO entries are not allowed"
    return None


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _read_small(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            value = handle.read().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


def _write_small(path: str, value: str) -> None:
    with fileio.atomic_write(path) as handle:
        handle.write(value)
