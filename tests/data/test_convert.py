"""`dataset convert coco2odvg`: any id numbering -> contiguous ids, round trip of boxes and masks."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mask_grounding_dino.data.coco import read_coco
from mask_grounding_dino.data.label_map import read_label_map
from mask_grounding_dino.data.masks import decode_mask, encode_rle
from mask_grounding_dino.data.odvg import read_odvg
from mask_grounding_dino.data.records import DetectionRecord, GroundingRecord
from mask_grounding_dino.data.tools import convert
from mask_grounding_dino.errors import DataError, UserError

H, W = 20, 30


def _rle_mask():
    m = np.zeros((H, W), bool)
    m[4:9, 10:17] = True
    return m


def _coco(cat_ids=(1, 3, 7)):
    c1, c3, c7 = cat_ids
    return {
        "info": {"description": "test"},
        "images": [{"id": 100, "file_name": "a.png", "height": H, "width": W, "license": 2},
                   {"id": 101, "file_name": "b.png", "height": H, "width": W},
                   {"id": 102, "file_name": "empty.png", "height": H, "width": W},
                   {"id": 103, "file_name": "crowd_only.png", "height": H, "width": W}],
        "annotations": [
            {"id": 1, "image_id": 100, "category_id": c3, "bbox": [1.5, 2.25, 10.0, 5.5], "area": 55.0, "iscrowd": 0,
             "segmentation": [[1.5, 2.25, 11.5, 2.25, 11.5, 7.75, 1.5, 7.75]]},
            {"id": 2, "image_id": 100, "category_id": c7, "bbox": [10, 4, 7, 5], "area": 35.0, "iscrowd": 0,
             "segmentation": encode_rle(_rle_mask())},
            {"id": 3, "image_id": 101, "category_id": c1, "bbox": [0, 0, 5, 5], "area": 25.0, "iscrowd": 0,
             "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
            {"id": 4, "image_id": 101, "category_id": c1, "bbox": [3, 3, 0, 4], "area": 0.0, "iscrowd": 0},
            {"id": 5, "image_id": 103, "category_id": c3, "bbox": [0, 0, 8, 8], "area": 64.0, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": [0, 64, H * W - 64]}},
        ],
        "categories": [{"id": c7, "name": "bird", "supercategory": "animal"},
                       {"id": c1, "name": "cat", "supercategory": "animal"},
                       {"id": c3, "name": "dog", "supercategory": "animal"},
                       {"id": 50, "name": "unused"}],
    }


def _run(*argv) -> int:
    parser = argparse.ArgumentParser()
    convert.add_arguments(parser)
    return convert.run(parser.parse_args([str(a) for a in argv]))


def test_non_contiguous_coco_fails_read_then_convert_fixes_it(tmp_path, capsys):
    src = tmp_path / "annotations.json"
    src.write_text(json.dumps(_coco()))
    with pytest.raises(DataError, match=r"\[1, 3, 7, 50\] are not contiguous"):
        read_coco(str(src))
    assert _run("coco2odvg", src) == 0
    out = capsys.readouterr().out
    assert "1->0 (cat), 3->1 (dog), 7->2 (bird), 50->3 (unused)" in out
    assert "dropped: 1 crowd, 1 with a box of no area" in out

    # Label map: sorted by original id, nothing hard-coded.
    assert read_label_map(str(tmp_path / "annotations_odvg_labelmap.json")) == {0: "cat", 1: "dog", 2: "bird",
                                                                                3: "unused"}
    # The remapped COCO passes TAO's rule and keeps every annotation and extra key.
    fixed = read_coco(str(tmp_path / "annotations_contiguous.json"))
    original = read_coco(str(src), require_contiguous=False)
    assert len(fixed.images) == len(original.images) and len(fixed.annotations) == len(original.annotations)
    id_map = {1: 0, 3: 1, 7: 2, 50: 3}
    for a, b in zip(original.annotations, fixed.annotations):
        assert b.category_id == id_map[a.category_id] and b.bbox == a.bbox and b.segmentation == a.segmentation
    raw = json.loads((tmp_path / "annotations_contiguous.json").read_text())
    assert raw["info"] == {"description": "test"} and raw["images"][0]["license"] == 2
    assert raw["categories"][0] == {"id": 0, "name": "cat", "supercategory": "animal"}

    # ODVG: one record per image with kept annotations; the empty image is a negative;
    # the crowd-only image is skipped.
    recs = read_odvg(str(tmp_path / "annotations_odvg.jsonl"))
    assert [r.file_name for r in recs] == ["a.png", "b.png", "empty.png"]
    assert all(isinstance(r, DetectionRecord) for r in recs) and recs[2].instances == []
    by_id = {a.id: a for a in original.annotations}
    kept = [(recs[0], 0, 1), (recs[0], 1, 2), (recs[1], 0, 3)]
    for rec, index, ann_id in kept:
        inst, ann = rec.instances[index], by_id[ann_id]
        x, y, w, h = ann.bbox
        # xywh -> xyxy in float64: x + w is exact here (binary fractions), so compare exactly.
        assert inst.bbox == (x, y, x + w, y + h)
        assert inst.label == id_map[ann.category_id] and inst.category == original.categories[ann.category_id]
        np.testing.assert_array_equal(decode_mask(inst.mask, H, W), decode_mask(ann.segmentation, H, W))
    assert sum(len(r.instances) for r in recs) == 3


def test_from_to_flags_out_dir_and_only_used_categories(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(_coco(cat_ids=(90, 5, 17))))
    out = tmp_path / "out"
    assert _run("--from", "coco", "--to", "odvg", src, "--out-dir", out, "--only-used-categories",
                "--keep-crowd", "--no-coco-out") == 0
    assert read_label_map(str(out / "train_odvg_labelmap.json")) == {0: "dog", 1: "bird", 2: "cat"}
    assert not (out / "train_contiguous.json").exists()
    recs = read_odvg(str(out / "train_odvg.jsonl"))
    assert [r.file_name for r in recs] == ["a.png", "b.png", "empty.png", "crowd_only.png"]  # crowd kept


def test_grounding_coco_becomes_grounding_records(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W, "caption": "a dog and a cat. "}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "tokens_positive": [[2, 5]]},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 4, 4], "tokens_positive": [[12, 15]]}],
            "categories": [{"id": 1, "name": "object"}]}
    src = tmp_path / "flickr.json"
    src.write_text(json.dumps(data))
    assert _run("coco2odvg", src) == 0
    (rec,) = read_odvg(str(tmp_path / "flickr_odvg.jsonl"))
    assert isinstance(rec, GroundingRecord) and rec.caption == "a dog and a cat."
    assert [r.phrase for r in rec.regions] == ["dog", "cat"] and rec.regions[1].tokens_positive == [[12, 15]]


def test_usage_errors(tmp_path):
    src = tmp_path / "a.json"
    src.write_text(json.dumps(_coco()))
    with pytest.raises(UserError, match="first give a conversion"):
        _run(src)
    with pytest.raises(UserError, match="no conversion from odvg to coco"):
        _run("--from", "odvg", "--to", "coco", src)
    with pytest.raises(UserError, match="would overwrite the input"):
        _run("coco2odvg", src, "--coco-out", src)
    with pytest.raises(UserError, match="not found"):
        _run("coco2odvg", tmp_path / "missing.json")
