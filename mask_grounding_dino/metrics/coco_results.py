"""COCO ground truth as a ``COCO`` object, and result entries (``writers/coco_results.py``)
loaded against it, split by IoU type, for pycocotools."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mask_grounding_dino.data import fileio
from mask_grounding_dino.data.records import CocoDataset
from mask_grounding_dino.errors import DataError

GroundTruth = Union[CocoDataset, COCO, str, os.PathLike]


def split_by_iou_type(results: Sequence[dict], iou_type: str) -> list[dict]:
    """Entries for one evaluation: bbox results drop the masks, segm results drop the boxes.

    ``COCO.loadRes`` derives area (and for segm the box) from what it is given; evaluating
    segm from mask-only entries makes the area ranges use the mask area, as in COCO.
    """
    if iou_type == "bbox":
        return [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    if iou_type == "segm":
        return [{k: v for k, v in r.items() if k != "bbox"} for r in results if "segmentation" in r]
    raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")


def _quiet(fn, *args, **kwargs):
    """Run a pycocotools call without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _segmentation(ann, height: int, width: int) -> tuple[Any, float]:
    """A record's mask as pycocotools accepts it, and its area; boxes stand in when absent."""
    seg = ann.segmentation
    x, y, w, h = ann.bbox
    if seg is None or (isinstance(seg, list) and not seg):
        seg = [[x, y, x, y + h, x + w, y + h, x + w, y]]
    elif isinstance(seg, np.ndarray):
        seg = encode_masks(seg.astype(bool)[None])[0]
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = seg
    return seg, float(mask_utils.area(rle))


def coco_dataset_to_dict(dataset: CocoDataset) -> dict:
    """A :class:`CocoDataset` record -> the COCO json dict pycocotools reads.

    ``area`` is kept when given (> 0), else computed from the mask (COCO's definition).
    """
    sizes = {img.id: (img.height, img.width) for img in dataset.images}
    anns = []
    for ann in dataset.annotations:
        height, width = sizes.get(ann.image_id, (0, 0))
        seg, mask_area = _segmentation(ann, height, width)
        anns.append({"id": int(ann.id), "image_id": int(ann.image_id), "category_id": int(ann.category_id),
                     "bbox": [float(v) for v in ann.bbox], "segmentation": seg,
                     "area": float(ann.area) if ann.area > 0 else mask_area, "iscrowd": int(ann.iscrowd)})
    return {"images": [{"id": i.id, "file_name": i.file_name, "height": i.height, "width": i.width}
                       for i in dataset.images],
            "annotations": anns,
            "categories": [{"id": int(k), "name": v} for k, v in sorted(dataset.categories.items())]}


def load_ground_truth(gt: GroundTruth) -> COCO:
    """A ``COCO`` object from a :class:`CocoDataset`, a COCO json path or URL, or a ``COCO`` object."""
    if isinstance(gt, COCO):
        return gt
    coco = COCO()
    if isinstance(gt, CocoDataset):
        coco.dataset = coco_dataset_to_dict(gt)
    else:
        gt = os.fspath(gt)
        coco.dataset = fileio.read_json(gt)      # local or a URL; a missing file or bad JSON: one line
        if not isinstance(coco.dataset, dict) or "images" not in coco.dataset:
            raise DataError(f"{fileio.redact(gt)}: not a COCO annotation file (expected an object with 'images', "
                            "'annotations' and 'categories')")
    _quiet(coco.createIndex)
    return coco


def load_results(gt: COCO, results: Sequence[dict]) -> COCO:
    """``gt.loadRes(results)``, or an empty result set (``loadRes`` cannot take an empty list)."""
    if results:
        return _quiet(gt.loadRes, list(results))
    empty = COCO()
    empty.dataset = {"images": list(gt.dataset.get("images", [])),
                     "categories": list(gt.dataset.get("categories", [])), "annotations": []}
    _quiet(empty.createIndex)
    return empty
