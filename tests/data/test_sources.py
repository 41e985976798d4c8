"""Image sources on real files: folders, images.tar.gz (cache, safety, concurrency)."""

from __future__ import annotations

import io
import multiprocessing
import os
import tarfile

import numpy as np
import pytest

from mask_grounding_dino.data.sources import FolderSource, open_image_source
from mask_grounding_dino.data.sources import archive as archive_mod
from mask_grounding_dino.errors import DataError


def _dataset(tmp_path, write_png):
    root = tmp_path / "data"
    arrays = {name: write_png(root / "images" / name, seed=i) for i, name in enumerate(["a.png", "b.png"])}
    write_png(root / "images" / "sub" / "c.png", seed=7)
    (root / "images" / "notes.txt").write_text("not an image")
    return root, arrays


def _tar_gz(root, out):
    with tarfile.open(out, "w:gz") as tar:
        tar.add(root / "images", arcname="images")
    return str(out)


def test_folder_source(tmp_path, write_png):
    root, arrays = _dataset(tmp_path, write_png)
    src = open_image_source(str(root))
    assert isinstance(src, FolderSource)
    assert src.list_images() == ["images/a.png", "images/b.png", "images/sub/c.png"]
    # With or without the images/ prefix, pointing at the dataset or at images/ itself.
    assert src.exists("images/a.png") and src.exists("a.png") and not src.exists("zzz.png")
    inner = open_image_source(str(root / "images"))
    assert inner.exists("images/a.png") and inner.exists("sub/c.png")
    arr = src.read_array("a.png")
    assert arr.dtype == np.uint8 and arr.shape == (16, 24, 3)
    np.testing.assert_array_equal(arr, arrays["a.png"])
    assert src.read("images/b.png").mode == "RGB"
    assert src.image_size("a.png") == (16, 24)
    with pytest.raises(DataError, match="image 'images/zzz.png' not found in folder"):
        src.read("images/zzz.png")


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_image_source(str(tmp_path / "missing"))
    (tmp_path / "file.zip").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file; expected a folder"):
        open_image_source(str(tmp_path / "file.zip"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png: cannot decode image"):
        open_image_source(str(tmp_path)).read("bad.png")


def test_archive_extracts_once_into_content_keyed_cache(tmp_path, write_png, monkeypatch):
    root, arrays = _dataset(tmp_path, write_png)
    archive = _tar_gz(root, tmp_path / "images.tar.gz")
    cache = tmp_path / "cache"
    calls = []
    real = archive_mod.safe_extract
    monkeypatch.setattr(archive_mod, "safe_extract", lambda *a, **k: calls.append(a) or real(*a, **k))

    src = open_image_source(archive, cache_dir=str(cache))
    np.testing.assert_array_equal(src.read_array("a.png"), arrays["a.png"])
    np.testing.assert_array_equal(src.read_array("images/b.png"), arrays["b.png"])
    assert src.list_images() == ["images/a.png", "images/b.png", "images/sub/c.png"]
    assert "images.tar.gz" in src.describe()
    again = open_image_source(archive, cache_dir=str(cache))
    assert again.root == src.root and len(calls) == 1          # second run: no extraction

    # A copy elsewhere has the same content: same cache entry (hashed, not extracted again).
    copy = tmp_path / "copy" / "images.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(open(archive, "rb").read())
    assert open_image_source(str(copy), cache_dir=str(cache)).root == src.root and len(calls) == 1

    # Changed content: a new entry.
    write_png(root / "images" / "d.png", seed=9)
    _tar_gz(root, archive)
    changed = open_image_source(archive, cache_dir=str(cache))
    assert changed.root != src.root and changed.exists("d.png") and len(calls) == 2
    # No temporary folders are left behind.
    leftovers = [p for p in os.listdir(cache / "archives") if p.startswith(".extract-")]
    assert leftovers == []


def test_default_cache_dir_from_environment(tmp_path, write_png, monkeypatch):
    root, _ = _dataset(tmp_path, write_png)
    archive = _tar_gz(root, tmp_path / "images.tar.gz")
    monkeypatch.setenv("MASK_GROUNDING_DINO_CACHE", str(tmp_path / "envcache"))
    src = open_image_source(archive)
    assert src.root.startswith(str(tmp_path / "envcache"))


def _add(tar, name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink_abs", "symlink_rel", "hardlink_abs",
                                  "hardlink_dotdot", "fifo"])
def test_unsafe_members_are_refused(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    members = {
        "absolute": dict(name=str(outside / "abs.txt")),
        "dotdot": dict(name="images/../../../outside/dotdot.txt"),
        "symlink_abs": dict(name="images/passwd", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        "symlink_rel": dict(name="images/up", kind=tarfile.SYMTYPE, link="../../../outside"),
        "hardlink_abs": dict(name="images/hard", kind=tarfile.LNKTYPE, link="/etc/passwd"),
        "hardlink_dotdot": dict(name="images/hard2", kind=tarfile.LNKTYPE, link="../../outside/x"),
        "fifo": dict(name="images/pipe", kind=tarfile.FIFOTYPE),
    }
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "images/ok.txt", b"fine")        # a good member first: it must not survive
        _add(tar, **members[case])
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        open_image_source(str(archive), cache_dir=str(cache))
    assert f"refusing to extract member '{members[case]['name']}'" in str(info.value)
    assert os.listdir(outside) == []
    extracted = [p for p in os.listdir(cache / "archives") if p not in ("keys", "downloads")]
    assert [p for p in extracted if not p.endswith(".lock")] == []   # nothing half-extracted


def _extract_in_child(archive, cache, log, queue):
    real = archive_mod.safe_extract

    def counting(*args, **kwargs):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    archive_mod.safe_extract = counting
    queue.put(archive_mod.extract_archive(archive, cache))


def test_concurrent_processes_extract_once(tmp_path, write_png):
    root, _ = _dataset(tmp_path, write_png)
    archive = _tar_gz(root, tmp_path / "images.tar.gz")
    cache, log = str(tmp_path / "cache"), str(tmp_path / "calls.log")
    ctx = multiprocessing.get_context("fork")  # no re-import: the children start in milliseconds
    queue = ctx.Queue()
    procs = [ctx.Process(target=_extract_in_child, args=(archive, cache, log, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(results)) == 1 and os.path.isfile(os.path.join(results[0], "images", "a.png"))
    assert len(open(log).read().split()) == 1


def test_corrupt_archive_and_unwritable_cache(tmp_path):
    bad = tmp_path / "images.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="not a readable tar archive"):
        open_image_source(str(bad), cache_dir=str(tmp_path / "cache"))
    (tmp_path / "blocker").write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="cannot create the archive cache"):
        open_image_source(str(bad), cache_dir=str(tmp_path / "blocker"))
    with pytest.raises(DataError, match="image archive: .* file not found"):
        open_image_source(str(tmp_path / "missing.tar.gz"), cache_dir=str(tmp_path / "cache"))
