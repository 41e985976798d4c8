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
from mask_grounding_dino.errors import DataError, UserError


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


# -- what readers that need a local file use: fetched once into the cache --------------------------
def test_local_copy_fetches_once_and_again_when_the_object_changes(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MASK_GROUNDING_DINO_CACHE", str(tmp_path / "cache"))
    fs = s3fs.S3FileSystem()
    url = f"s3://{s3_bucket}/models/model.pth"
    fs.pipe(url, b"first")
    downloads = []
    real = fileio._download
    monkeypatch.setattr(fileio, "_download", lambda *a, **k: downloads.append(a[0]) or real(*a, **k))

    first = fileio.local_copy(url)
    assert open(first, "rb").read() == b"first" and first.startswith(str(tmp_path / "cache" / "remote"))
    assert fileio.local_copy(url) == first and len(downloads) == 1          # the second read: no download
    fs.pipe(url, b"second version")                                          # new ETag and size
    second = fileio.local_copy(url)
    assert second != first and open(second, "rb").read() == b"second version" and len(downloads) == 2
    assert sorted(p.name for p in (tmp_path / "cache" / "remote").rglob("*") if p.is_file()
                  and not p.name.endswith(".lock")) == ["model.pth", "model.pth"]   # no partial file left

    local = tmp_path / "here.bin"
    local.write_bytes(b"x")
    assert fileio.local_copy(str(local)) == str(local)                       # local paths stay as they are
    with pytest.raises(DataError, match=r"^evaluate.checkpoint: .*nothere.pth: file not found$"):
        fileio.local_copy(str(tmp_path / "nothere.pth"), key="evaluate.checkpoint")


def test_local_copy_of_a_folder(s3_bucket, tmp_path, monkeypatch):
    """A Hugging Face checkpoint folder on S3 (config.json + weights) arrives as one local folder."""
    monkeypatch.setenv("MASK_GROUNDING_DINO_CACHE", str(tmp_path / "cache"))
    fs = s3fs.S3FileSystem()
    fs.pipe(f"{s3_bucket}/hf/gdino/config.json", b"{}")
    fs.pipe(f"{s3_bucket}/hf/gdino/sub/model.safetensors", b"w")
    url = f"s3://{s3_bucket}/hf/gdino"
    assert fileio.isdir(url) and not fileio.isfile(url) and fileio.isfile(url + "/config.json")
    assert fileio.list_files(url) == ["config.json", "sub/model.safetensors"]
    folder = fileio.local_copy(url)
    assert fileio.list_files(folder) == ["config.json", "sub/model.safetensors"]
    assert fileio.local_copy(url) == folder
    fs.pipe(f"{s3_bucket}/hf/gdino/config.json", b'{"changed": 1}')        # any file changed: fetched again
    assert fileio.local_copy(url) != folder


def test_checkpoints_from_s3(s3_bucket, tmp_path, monkeypatch):
    """train.pretrained_model_path, model.pretrained_backbone_path and the actions' checkpoints are
    read by read_checkpoint / load_backbone_weights, which take URLs."""
    import torch

    from mask_grounding_dino.model.checkpoint import read_checkpoint
    from mask_grounding_dino.model.checkpoint.backbone import load_backbone_weights

    monkeypatch.setenv("MASK_GROUNDING_DINO_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    donor = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    # The original release's layout: {"model": state dict}, backbone under backbone.0.body.
    torch.save({"model": {f"backbone.0.body.{k}": v for k, v in donor.state_dict().items()}}, tmp_path / "m.pth")
    url = f"s3://{s3_bucket}/models/m.pth"
    s3fs.S3FileSystem().put_file(str(tmp_path / "m.pth"), url)

    raw = read_checkpoint(url)
    assert raw.path == url and raw.format == "official"
    local = read_checkpoint(tmp_path / "m.pth")
    assert raw.state.keys() == local.state.keys()
    assert all(torch.equal(raw.state[k], local.state[k]) for k in local.state)

    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert load_backbone_weights(body, url).loaded == 2
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in body.state_dict().items())
    with pytest.raises(UserError, match=rf"checkpoint 's3://{s3_bucket}/models/none.pth' does not exist"):
        read_checkpoint(f"s3://{s3_bucket}/models/none.pth")
    with pytest.raises(UserError, match=rf"model.pretrained_backbone_path: file 's3://{s3_bucket}/none.pth' does not"):
        load_backbone_weights(body, f"s3://{s3_bucket}/none.pth")


# -- one line for what a user gets wrong -----------------------------------------------------------
def test_missing_bucket_and_object_name_the_key(s3_endpoint):
    with pytest.raises(DataError) as info, fileio.spec_keys({"s3://no-such-bucket/a.json": "dataset.x.json_file"}):
        fileio.read_json("s3://no-such-bucket/a.json")
    assert str(info.value) == ("dataset.x.json_file: s3://no-such-bucket/a.json: the bucket 'no-such-bucket' does "
                               "not exist (or is not visible with these credentials)")
    assert not fileio.exists("s3://no-such-bucket/a.json")


def test_no_credentials(s3_bucket, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    url = f"s3://{s3_bucket}/a.json"
    try:
        for call in (fileio.exists, fileio.isfile, fileio.isdir, fileio.list_files, fileio.identity,
                     fileio.local_copy, fileio.read_json):
            with pytest.raises(DataError, match=rf"^s3://{s3_bucket}/a.json: no credentials for this storage"):
                call(url)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_spec_file_from_s3(s3_bucket):
    """``-e s3://bucket/spec.yaml`` (the CLI, ``load_spec`` and a job's request): read through the file
    layer, with the same file:line messages as a local file."""
    from mask_grounding_dino.config import load_spec
    from mask_grounding_dino.errors import SpecError
    from mask_grounding_dino.jobs.specs import read_request

    fs = s3fs.S3FileSystem()
    url = f"s3://{s3_bucket}/specs/train.yaml"
    fs.pipe(url, b"results_dir: /runs/exp1\ntrain:\n  num_epochs: 3\n")
    assert load_spec(url).train.num_epochs == 3
    request, cfg = read_request(url, None, ["train.num_epochs=5"])
    assert request.spec_file == url  # kept as a URL, not made into a local path
    assert (cfg.results_dir, cfg.train.num_epochs) == ("/runs/exp1", 5)
    fs.pipe(f"s3://{s3_bucket}/specs/bad.yaml", b"train:\n  num_epochs: three\n")
    with pytest.raises(SpecError, match=rf"s3://{s3_bucket}/specs/bad.yaml:2"):
        load_spec(f"s3://{s3_bucket}/specs/bad.yaml")
    with pytest.raises(SpecError, match=rf"^s3://{s3_bucket}/specs/missing.yaml: spec file not found$"):
        load_spec(f"s3://{s3_bucket}/specs/missing.yaml")
