"""COCO reader: typed dataset, TAO's contiguous-id rule, extra keys, reference checks."""

import json

import pytest

from mask_grounding_dino.data.coco import read_coco
from mask_grounding_dino.errors import DataError


def _coco(cat_ids=(0, 1, 2)):
    return {
        "images": [{"id": 10, "file_name": "a.png", "height": 20, "width": 30},
                   {"id": 11, "file_name": "b.png", "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": cat_ids[0], "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0,
             "segmentation": [[1, 2, 4, 2, 4, 6, 1, 6]], "referring_expression": "the red one", "sent_id": 5},
            {"id": 2, "image_id": 11, "category_id": cat_ids[2], "bbox": [0, 0, 5, 5], "iscrowd": 1,
             "segmentation": {"size": [20, 30], "counts": [0, 600]}, "empty": False},
        ],
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, ("cat", "dog", "bird"))],
    }


def _write(tmp_path, data, name="annotations.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_read(tmp_path):
    ds = read_coco(_write(tmp_path, _coco()))
    assert ds.categories == {0: "cat", 1: "dog", 2: "bird"}
    assert [img.file_name for img in ds.images] == ["a.png", "b.png"]
    a, b = ds.annotations
    assert a.bbox == (1.0, 2.0, 3.0, 4.0) and a.area == 12.0 and a.segmentation[0][0] == 1
    assert a.extra == {"referring_expression": "the red one", "sent_id": 5}
    assert b.iscrowd == 1 and b.extra == {"empty": False} and b.segmentation["counts"] == [0, 600]
    assert {k: [x.id for x in v] for k, v in ds.annotations_by_image().items()} == {10: [1], 11: [2]}


def test_non_contiguous_ids_name_them_and_point_to_convert(tmp_path):
    path = _write(tmp_path, _coco(cat_ids=(1, 3, 7)))
    with pytest.raises(DataError) as info:
        read_coco(path)
    msg = str(info.value)
    assert "annotations.json" in msg and "[1, 3, 7]" in msg and "missing [0, 2]" in msg and "unexpected [3, 7]" in msg
    assert f"mask_grounding_dino dataset convert coco2odvg {path}" in msg
    assert read_coco(path, require_contiguous=False).categories == {1: "cat", 3: "dog", 7: "bird"}


def test_reference_problems_are_refused_when_strict(tmp_path):
    data = _coco()
    data["annotations"][1]["image_id"] = 99
    data["annotations"][1]["id"] = 1
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as info:
        read_coco(path)
    assert "annotations[1]: annotation id 1 is used twice" in str(info.value)
    assert "annotations[1]: image_id 99 is not in 'images'" in str(info.value)
    assert len(read_coco(path, strict=False).annotations) == 2


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["annotations"][0].pop("bbox"), "annotations[0]: missing key 'bbox'"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2]), "annotations[0].bbox must be a list of 4 numbers [x, y, width, height]"),
    (lambda d: d["images"][1].update(height="tall"), "images[1].height must be an integer"),
    (lambda d: d.pop("categories"), "missing key 'categories'"),
    (lambda d: d["categories"].append({"id": 0, "name": "again"}), "category id 0 is declared twice"),
])
def test_structural_errors(tmp_path, mutate, fragment):
    data = _coco()
    mutate(data)
    with pytest.raises(DataError) as info:
        read_coco(_write(tmp_path, data))
    assert fragment in str(info.value)
