"""The inference action: annotated images, TAO's KITTI labels ("Empty" when nothing passes), a
results.json that pycocotools loads, VG prompts from inference.jsonl, one-line errors."""

from __future__ import annotations

import json
import pathlib

from PIL import Image
from pycocotools.coco import COCO

from mask_grounding_dino import cli
from mask_grounding_dino.actions import inference


def _infer_spec(make_spec, overrides):
    return make_spec({"inference.input_width": 96, "inference.input_height": 96, **overrides})


def test_od_writes_pictures_labels_and_coco_results(make_spec, synth_data, tiny_checkpoint):
    cfg = _infer_spec(make_spec, {
        "inference.checkpoint": str(tiny_checkpoint), "inference.conf_threshold": 0.0,
        "inference.color_map": {"red circle": [255, 0, 0]},
        "dataset.infer_data_sources": {"image_dir": str(synth_data / "val" / "images"),
                                       "captions": [str(synth_data / "val" / "label_map.txt")], "data_type": "OD"}})
    assert inference.run(cfg, progress_bar=False) == 0
    out = cfg.results_dir + "/inference"
    names = sorted(p.name for p in (synth_data / "val" / "images").iterdir())
    for name in names:
        original = Image.open(synth_data / "val" / "images" / name)
        annotated = Image.open(f"{out}/images_annotated/{name}")
        # Small pictures are drawn upscaled to a 512 px long side (the 64 px originals are square).
        assert original.size == (64, 64) and annotated.size == (512, 512)
        lines = open(f"{out}/labels/{name.rsplit('.', 1)[0]}.txt").read().splitlines()
        # conf_threshold 0 keeps the model's detections: 16 KITTI fields each, score last.
        assert lines and lines != ["Empty"] and all(len(line.split()) == 16 for line in lines)

    index = json.load(open(f"{out}/results_index.json"))
    classes = [line.strip() for line in open(synth_data / "val" / "label_map.txt") if line.strip()]
    assert [c["name"] for c in index["categories"]] == classes                # id = position in the prompt
    assert sorted(i["file_name"] for i in index["images"]) == names
    results = json.load(open(f"{out}/results.json"))
    assert all({"file_name", "category", "phrase", "segmentation"} <= set(r) for r in results)
    assert all(r["category"] == classes[r["category_id"]] for r in results)
    # pycocotools: a COCO object built from the index loads results.json with loadRes.
    gt = COCO()
    gt.dataset = {**index, "annotations": []}
    gt.createIndex()
    loaded = gt.loadRes(f"{out}/results.json")
    assert len(loaded.getAnnIds()) == len(results) > 0


def test_vg_from_jsonl_with_nothing_kept_writes_empty(make_spec, synth_data, tiny_checkpoint):
    cfg = _infer_spec(make_spec, {
        "inference.checkpoint": str(tiny_checkpoint), "inference.conf_threshold": 1.0,
        "dataset.infer_data_sources": {"image_dir": str(synth_data / "vg" / "images.tar.gz"),
                                       "json_file": str(synth_data / "vg" / "inference.jsonl"), "data_type": "VG"}})
    assert inference.run(cfg, progress_bar=False) == 0
    out = cfg.results_dir + "/inference"
    items = [json.loads(line) for line in open(synth_data / "vg" / "inference.jsonl") if line.strip()]
    labels = sorted(p.name for p in pathlib.Path(f"{out}/labels").iterdir())
    # One output per expression: an image with several expressions gets <stem>_<n>.
    assert len(labels) == len(items)
    assert all(open(f"{out}/labels/{name}").read() == "Empty\n" for name in labels)
    assert json.load(open(f"{out}/results.json")) == []
    index = json.load(open(f"{out}/results_index.json"))
    assert len(index["images"]) == len(items)


def test_missing_captions_is_one_line_error_before_loading(tmp_path, synth_data, capsys):
    args = ["inference", f"results_dir={tmp_path}", f"inference.checkpoint={tmp_path / 'not_read.pth'}",
            f"dataset.infer_data_sources.image_dir={synth_data / 'val' / 'images'}"]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: dataset.infer_data_sources.captions: required for OD inference")


def test_onnx_checkpoint_missing_is_one_line_error(tmp_path, synth_data, capsys):
    args = ["inference", f"results_dir={tmp_path}", f"inference.checkpoint={tmp_path / 'model.onnx'}",
            f"dataset.infer_data_sources.image_dir={synth_data / 'val' / 'images'}",
            "dataset.infer_data_sources.captions=[cat]"]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: inference.checkpoint: ONNX file '{tmp_path / 'model.onnx'}' does not exist; "
                           f"'{tmp_path}' holds")
