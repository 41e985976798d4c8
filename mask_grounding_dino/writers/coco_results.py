"""Detections as COCO result entries and the COCO results file (``results.json``).

A result entry is what ``COCO.loadRes`` accepts::

    {"image_id": int, "category_id": int, "score": float,
     "bbox": [x, y, w, h],                          # pixels of the original image
     "segmentation": {"size": [H, W], "counts": str}}  # RLE (only when masks exist)

``Detections.labels`` are phrase indices of the prompt; ``label_to_category`` maps them to
dataset category ids (for OD the prompt is the class list, so label ``i`` is the ``i``-th
category). Written by inference and evaluate; scored by the COCO evaluator.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Iterable, Mapping, Protocol, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils

from ..utils.atomic import atomic_open

ArrayLike = Any     # torch.Tensor or np.ndarray
LabelToCategory = Union[Mapping[int, int], Sequence[int]]


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
