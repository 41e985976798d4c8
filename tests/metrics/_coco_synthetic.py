"""A small synthetic COCO set (polygons, RLE, crowd, all three area ranges) and noisy predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from pycocotools import mask as mask_utils

from mask_grounding_dino.data.records import CocoAnnotation, CocoDataset, CocoImage

CATEGORIES = {1: "cat", 5: "dog", 7: "bird"}          # non-contiguous ids on purpose
LABEL_TO_CATEGORY = [1, 5, 7]                          # prompt "cat . dog . bird ." -> phrase index -> id
SIDES = (14, 26, 45, 70, 150)                          # small (<32^2), medium, large (>=96^2) objects


@dataclass
class Dets:
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: Optional[torch.Tensor]
    phrases: list
    no_target: bool = False


def _octagon(x: float, y: float, w: float, h: float) -> list[float]:
    cut_w, cut_h = w * 0.3, h * 0.3
    pts = [(x + cut_w, y), (x + w - cut_w, y), (x + w, y + cut_h), (x + w, y + h - cut_h),
           (x + w - cut_w, y + h), (x + cut_w, y + h), (x, y + h - cut_h), (x, y + cut_h)]
    return [float(v) for p in pts for v in p]


def make_gt(seed: int = 0, n_images: int = 8) -> dict:
    """COCO json dict with polygons, compressed + uncompressed RLE and one crowd region."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for img_id in range(1, n_images + 1):
        h, w = int(rng.integers(150, 200)), int(rng.integers(170, 230))
        images.append({"id": img_id * 10, "file_name": f"{img_id}.jpg", "height": h, "width": w})
        for k in range(int(rng.integers(3, 7))):
            side = SIDES[(img_id + k) % len(SIDES)] * float(rng.uniform(0.85, 1.1))
            bw, bh = min(side, w - 4), min(side * float(rng.uniform(0.9, 1.2)), h - 4)
            x, y = float(rng.uniform(0, w - bw - 1)), float(rng.uniform(0, h - bh - 1))
            poly = _octagon(x, y, bw, bh)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
            crowd = int(k == 0 and img_id % 4 == 0)
            if crowd or k % 3 == 2:
                seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
            elif k % 3 == 1 and img_id % 2:
                seg = _uncompressed_rle(mask_utils.decode(rle))
            else:
                seg = [poly]
            anns.append({"id": len(anns) + 1, "image_id": img_id * 10,
                         "category_id": LABEL_TO_CATEGORY[int(rng.integers(0, 3))],
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                         "area": float(mask_utils.area(rle)), "segmentation": seg, "iscrowd": crowd})
    return {"images": images, "annotations": anns,
            "categories": [{"id": k, "name": v} for k, v in CATEGORIES.items()]}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for px in flat:
        if px == value:
            run += 1
        else:
            counts.append(run)
            value, run = px, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def gt_masks(gt: dict) -> dict[int, np.ndarray]:
    """Annotation id -> decoded [H, W] bool mask."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    out = {}
    for ann in gt["annotations"]:
        h, w = sizes[ann["image_id"]]
        seg = ann["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        out[ann["id"]] = mask_utils.decode(rle).astype(bool)
    return out


def to_dataset(gt: dict) -> CocoDataset:
    return CocoDataset(
        images=[CocoImage(id=i["id"], file_name=i["file_name"], height=i["height"], width=i["width"])
                for i in gt["images"]],
        annotations=[CocoAnnotation(id=a["id"], image_id=a["image_id"], category_id=a["category_id"],
                                    bbox=tuple(a["bbox"]), segmentation=a["segmentation"], area=a["area"],
                                    iscrowd=a["iscrowd"]) for a in gt["annotations"]],
        categories=dict(CATEGORIES))


def _box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def make_predictions(gt: dict, seed: int = 1, perfect: bool = False) -> dict[int, Dets]:
    """Image id -> detections: noisy copies of most objects, wrong labels, misses, false positives."""
    rng = np.random.default_rng(seed)
    masks = gt_masks(gt)
    by_image: dict[int, list] = {img["id"]: [] for img in gt["images"]}
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    for ann in gt["annotations"]:
        if perfect:
            if not ann["iscrowd"]:
                m = masks[ann["id"]]
                x, y, bw, bh = ann["bbox"]
                by_image[ann["image_id"]].append(([x, y, x + bw, y + bh], 1.0,
                                                  LABEL_TO_CATEGORY.index(ann["category_id"]), m))
            continue
        if rng.random() < 0.15:
            continue                                             # missed
        m = np.roll(masks[ann["id"]], shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
        if not m.any():
            continue
        box = np.array(_box_of(m)) + rng.normal(0, 1.5, 4)
        label = LABEL_TO_CATEGORY.index(ann["category_id"])
        if rng.random() < 0.1:
            label = int(rng.integers(0, 3))
        by_image[ann["image_id"]].append((box.tolist(), float(rng.uniform(0.05, 1.0)), label, m))
    if not perfect:
        for img_id, (h, w) in sizes.items():
            for _ in range(int(rng.integers(0, 3))):            # false positives
                x, y = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
                m = np.zeros((h, w), dtype=bool)
                m[y:y + int(rng.integers(8, 30)), x:x + int(rng.integers(8, 30))] = True
                by_image[img_id].append((_box_of(m), float(rng.uniform(0.0, 0.6)), int(rng.integers(0, 3)), m))
    out = {}
    for img_id, dets in by_image.items():
        h, w = sizes[img_id]
        out[img_id] = Dets(
            boxes=torch.tensor([d[0] for d in dets], dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor([d[1] for d in dets], dtype=torch.float32),
            labels=torch.tensor([d[2] for d in dets], dtype=torch.int64),
            masks=torch.from_numpy(np.stack([d[3] for d in dets])) if dets else torch.zeros(0, h, w, dtype=torch.bool),
            phrases=[["cat", "dog", "bird"][d[2]] for d in dets])
    return out
