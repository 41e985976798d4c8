"""Readers and image sources against a real S3 endpoint (moto server on loopback).

s3fs finds the endpoint through ``AWS_ENDPOINT_URL`` (set by the ``s3_endpoint`` fixture),
exactly as a user points it at MinIO or another S3-compatible store.
"""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import s3fs

from mask_grounding_dino.data import fileio
from mask_grounding_dino.data.coco import read_coco
from mask_grounding_dino.data.inference_inputs import read_inference_jsonl
from mask_grounding_dino.data.label_map import read_label_map
from mask_grounding_dino.data.odvg import read_odvg
from mask_grounding_dino.data.sources import RemoteSource, open_image_source
from mask_grounding_dino.data.sources import archive as archive_mod
from mask_grounding_dino.errors import DataError


def _png_bytes(path, write_png, seed):
    arr = write_png(path, seed=seed)
    return path.read_bytes(), arr


def test_remote_folder_images(s3_bucket, tmp_path, write_png):
    fs = s3fs.S3FileSystem()
    data_a, arr_a = _png_bytes(tmp_path / "a.png", write_png, 1)
    data_b, arr_b = _png_bytes(tmp_path / "b.png", write_png, 2)
    fs.pipe(f"{s3_bucket}/val/images/a.png", data_a)
    fs.pipe(f"{s3_bucket}/val/images/sub/b.png", data_b)
    fs.pipe(f"{s3_bucket}/val/images/readme.txt", b"x")

    src = open_image_source(f"s3://{s3_bucket}/val")
    assert isinstance(src, RemoteSource)
    np.testing.assert_array_equal(src.read_array("a.png"), arr_a)           # before any listing
    np.testing.assert_array_equal(src.read_array("images/sub/b.png"), arr_b)
    assert src.image_size("a.png") == (16, 24)
    assert src.list_images() == ["images/a.png", "images/sub/b.png"]
    assert src.exists("sub/b.png") and not src.exists("c.png")
    with pytest.raises(DataError, match=rf"image 'c.png' not found in remote folder s3://{s3_bucket}/val"):
        src.read("c.png")


def test_remote_archive_downloaded_and_extracted_once(s3_bucket, tmp_path, write_png, monkeypatch):
    arr = write_png(tmp_path / "images" / "x.png", seed=3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "images", arcname="images")
    s3fs.S3FileSystem().pipe(f"{s3_bucket}/train/images.tar.gz", buf.getvalue())
    downloads = []
    real = archive_mod._local_copy
    monkeypatch.setattr(archive_mod, "_local_copy", lambda *a: downloads.append(a) or real(*a))

    url = f"s3://{s3_bucket}/train/images.tar.gz"
    src = open_image_source(url, cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(src.read_array("x.png"), arr)
    again = open_image_source(url, cache_dir=str(tmp_path / "cache"))
    assert again.root == src.root and len(downloads) == 1
    assert (tmp_path / "cache" / "archives" / "downloads").exists()
    assert list((tmp_path / "cache" / "archives" / "downloads").iterdir()) == []   # download removed


def test_readers_on_s3(s3_bucket):
    fs = s3fs.S3FileSystem()
    base = f"{s3_bucket}/ds"
    det = {"file_name": "a.png", "height": 16, "width": 24,
           "detection": {"instances": [{"bbox": [1, 1, 5, 5], "label": 0, "category": "cat"}]}}
    fs.pipe(f"{base}/annotations_odvg.jsonl", (json.dumps(det) + "\n" + json.dumps(det) + "\n").encode())
    fs.pipe(f"{base}/annotations_odvg_labelmap.json", b'{"0": "cat"}')
    fs.pipe(f"{base}/label_map.txt", b"cat\ndog\n")
    fs.pipe(f"{base}/inference.jsonl", b'{"image_path": "a.png", "expression": "the cat"}\n')
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 24}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 4, 4]}],
            "categories": [{"id": 0, "name": "cat"}]}
    fs.pipe(f"{base}/annotations.json", json.dumps(coco).encode())

    recs = read_odvg(f"s3://{base}/annotations_odvg.jsonl")
    assert len(recs) == 2 and recs[1].line == 2 and recs[0].source == f"s3://{base}/annotations_odvg.jsonl"
    assert read_label_map(f"s3://{base}/annotations_odvg_labelmap.json") == {0: "cat"}
    assert read_label_map(f"s3://{base}/label_map.txt") == {0: "cat", 1: "dog"}
    assert read_inference_jsonl(f"s3://{base}/inference.jsonl")[0].expression == "the cat"
    assert read_coco(f"s3://{base}/annotations.json").categories == {0: "cat"}
    with pytest.raises(DataError, match=rf"s3://{base}/missing.jsonl: file not found"):
        read_odvg(f"s3://{base}/missing.jsonl")


def test_write_json_to_s3_and_back(s3_bucket):
    url = f"s3://{s3_bucket}/out/report.json"
    fileio.write_json(url, {"ok": True})
    assert fileio.read_json(url) == {"ok": True} and fileio.exists(url)


def test_messages_never_show_credentials():
    url = "s3://AKIAEXAMPLE:topsecret@bucket/x/images.tar.gz?X-Amz-Signature=deadbeef"
    shown = fileio.redact(url)
    assert "topsecret" not in shown and "deadbeef" not in shown and "AKIAEXAMPLE" not in shown
    assert shown == "s3://bucket/x/images.tar.gz"
