"""Prompt selectivity: does asking for one category return only that category?

For every category ``c`` each image is prompted with ``c`` alone. A returned box
is correct when it overlaps (IoU >= ``iou``) a ground-truth object of class
``c`` not already claimed; otherwise it is charged to the class of the
ground-truth object it overlaps most ("red circle" returning a red square is a
*colour-right, shape-wrong* confusion), to ``duplicate`` (a second box on an object
already found) or to ``background``. Reported per
category: precision, recall, the count of returned boxes, and the worst
confusion.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from torchvision.ops import box_iou
import torch


@dataclass
class CategorySelectivity:
    category: str
    returned: int = 0
    correct: int = 0
    objects: int = 0
    confusions: Counter = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.correct / self.returned if self.returned else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.objects if self.objects else 1.0

    def worst_confusion(self) -> str:
        if not self.confusions:
            return "-"
        name, count = self.confusions.most_common(1)[0]
        return f"{name} ({count})"

    def to_dict(self) -> dict:
        return {"category": self.category, "returned": self.returned, "correct": self.correct,
                "objects": self.objects, "precision": self.precision, "recall": self.recall,
                "confusions": dict(self.confusions)}


def score_prompt(detections, gt_boxes: np.ndarray, gt_names: list[str], category: str, iou: float = 0.5,
                 result: CategorySelectivity | None = None) -> CategorySelectivity:
    """Add one image's answer to the prompt ``category`` (boxes xyxy in pixels)."""
    result = result or CategorySelectivity(category)
    target = [i for i, n in enumerate(gt_names) if n == category]
    result.objects += len(target)
    boxes = detections.boxes.detach().cpu().float()
    result.returned += int(boxes.shape[0])
    if boxes.shape[0] == 0:
        return result
    if len(gt_names) == 0:
        result.confusions["background"] += int(boxes.shape[0])
        return result
    overlaps = box_iou(boxes, torch.as_tensor(gt_boxes, dtype=torch.float32))       # [D, G]
    claimed: set[int] = set()
    for d in range(boxes.shape[0]):                                                 # detections are score-sorted
        row = overlaps[d]
        candidates = [g for g in target if g not in claimed and row[g] >= iou]
        if candidates:
            best = max(candidates, key=lambda g: float(row[g]))
            claimed.add(best)
            result.correct += 1
            continue
        g = int(row.argmax())
        if row[g] < iou:
            result.confusions["background"] += 1
        else:  # a second box on an object already found counts as a duplicate
            result.confusions["duplicate" if gt_names[g] == category else gt_names[g]] += 1
    return result


def format_table(results: list[CategorySelectivity]) -> str:
    width = max([len(r.category) for r in results] + [8])
    lines = [f"{'prompt'.ljust(width)}  returned  precision  recall  most common wrong answer"]
    for r in results:
        lines.append(f"{r.category.ljust(width)}  {r.returned:8d}  {r.precision:9.3f}  {r.recall:6.3f}  "
                     f"{r.worst_confusion()}")
    return "\n".join(lines)
