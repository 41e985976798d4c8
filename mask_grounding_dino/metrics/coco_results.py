"""COCO result dictionaries: from ``Detections`` to json, and ground truth to a ``COCO`` object.

A result entry is what ``COCO.loadRes`` accepts::

    {"image_id": int, "category_id": int, "score": float,
     "bbox": [x, y, w, h],                          # pixels of the original image
     "segmentation": {"size": [H, W], "counts": str}}  # RLE (only when masks exist)

``Detections.labels`` are phrase indices of the prompt; ``label_to_category``
maps them to dataset category ids (for OD the prompt is the class list, so
label ``i`` is the ``i``-th category).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
from typing import Any, Iterable, Mapping, Protocol, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mask_grounding_dino.data import fileio
from mask_grounding_dino.data.records import CocoDataset
from mask_grounding_dino.errors import DataError
from mask_grounding_dino.utils.atomic import atomic_open

ArrayLike = Any     # torch.Tensor or np.ndarray
LabelToCategory = Union[Mapping[int, int], Sequence[int]]
GroundTruth = Union[CocoDataset, COCO, str, os.PathLike]


class DetectionsLike(Protocol):
    """The fields of ``model/results.py`` ``Detections`` read here."""

    boxes: ArrayLike          # [N, 4] xyxy, original-image pixels
    scores: ArrayLike         # [N]
    labels: ArrayLike         # [N] phrase index
    masks: ArrayLike | None   # [N, H, W] bool, or None


def to_numpy(x: ArrayLike | None) -> np.ndarray | None:
    """Tensor (any device) or array -> numpy array; None stays None."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_bool_masks(masks: ArrayLike) -> np.ndarray:
    """Masks as a bool array; float masks (probabilities) are binarised at 0.5."""
    arr = to_numpy(masks)
    return arr > 0.5 if np.issubdtype(arr.dtype, np.floating) else arr.astype(bool)


def encode_masks(masks: ArrayLike) -> list[dict]:
    """``[N, H, W]`` bool (float: > 0.5) -> N COCO RLE dicts with ``counts`` as str (json-ready)."""
    arr = to_bool_masks(masks)
    if arr.ndim != 3:
        raise ValueError(f"encode_masks: expected [N, H, W] masks, got shape {arr.shape}")
    if arr.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(arr.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _category_of(label_to_category: LabelToCategory, label: int) -> int:
    try:
        return int(label_to_category[label])
    except (KeyError, IndexError):
        known = (sorted(label_to_category) if isinstance(label_to_category, Mapping)
                 else f"0..{len(label_to_category) - 1}")
        raise ValueError(f"predicted label {label} has no category id in label_to_category "
                         f"(labels known: {known}); the prompt's phrases and the category list disagree") from None


def detections_to_coco(image_id: int, detections: DetectionsLike, label_to_category: LabelToCategory,
                       with_masks: bool = True) -> list[dict]:
    """One image's detections -> COCO result entries (bbox xywh, RLE when masks exist)."""
    boxes = to_numpy(detections.boxes).astype(np.float64).reshape(-1, 4)
    scores = to_numpy(detections.scores).astype(np.float64).reshape(-1)
    labels = to_numpy(detections.labels).astype(np.int64).reshape(-1)
    masks = to_numpy(detections.masks) if with_masks else None
    rles = encode_masks(masks) if masks is not None else None
    out = []
    for i in range(len(scores)):
        x1, y1, x2, y2 = boxes[i].tolist()
        entry = {"image_id": int(image_id), "category_id": _category_of(label_to_category, int(labels[i])),
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[i])}
        if rles is not None:
            entry["segmentation"] = rles[i]
        out.append(entry)
    return out


def write_coco_results(path: str | os.PathLike, results: Iterable[dict]) -> pathlib.Path:
    """Write result entries as a COCO results json (atomic: a reader never sees half a file)."""
    path = pathlib.Path(path)
    with atomic_open(path, "w") as f:
        json.dump(list(results), f)
    return path


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
