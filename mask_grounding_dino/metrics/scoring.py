"""One scorer for a data set's detections, used by validation during training and by ``evaluate``.

OD data (a COCO json): :class:`CocoEvaluator` (bbox, plus segm when the data set has masks).
VG data (referring expressions): :class:`ReferringEvaluator`. Both gather across processes, so a
data-parallel run scores once over every rank's images. Validation and ``evaluate`` feed the same
object the same way, so the same model on the same data gives the same numbers in both.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..utils.atomic import atomic_write_json
from ..writers.coco_results import encode_masks, write_coco_results
from .coco_evaluator import CocoEvaluator
from .distributed import gather_to_rank0, rank
from .referring import ReferringEvaluator


class DatasetScoring:
    """Accumulate ``(targets, detections)`` batches, then metrics with TAO's key names.

    Args:
        data_type: ``"OD"`` or ``"VG"``.
        coco_gt: OD: the ground truth (COCO json path, ``CocoDataset`` or ``COCO``).
        categories: OD: category id -> name in id order (== the prompt's phrases, so predicted
            label ``i`` is the ``i``-th id).
        with_segm: OD: score masks too (``dataset.has_mask``).
        score_threshold: VG: detections under it do not count (reported with the metrics).
        keep_predictions: VG: keep every expression's detections for :meth:`write_predictions`
            (OD predictions are the COCO entries the evaluator keeps anyway).
    """

    def __init__(self, data_type: str = "OD", *, coco_gt=None, categories: dict[int, str] | None = None,
                 with_segm: bool = True, score_threshold: float = 0.0, keep_predictions: bool = False):
        self.data_type = data_type.upper()
        self.keep_predictions = keep_predictions
        if self.data_type == "OD":
            if categories is None or coco_gt is None:
                raise ValueError("OD scoring needs categories and coco_gt")
            self.evaluator = CocoEvaluator(coco_gt, list(categories),
                                           iou_types=None if with_segm else ("bbox",))
        else:
            self.evaluator = ReferringEvaluator(score_threshold=score_threshold)
        self.reset()

    def reset(self) -> None:
        self.evaluator.reset()
        self._predictions: list[dict] = []

    def add(self, targets: Sequence[Any], detections: Sequence[Any]) -> None:
        """One batch: the batch's targets and their post-processed ``Detections``."""
        if self.data_type == "OD":
            self.evaluator.update([t.image_id for t in targets], detections)
            return
        self.evaluator.update(detections, targets)
        if self.keep_predictions:
            self._predictions += [_referring_prediction(t, d) for t, d in zip(targets, detections)]

    def compute(self, prefix: str) -> tuple[dict[str, float], Any]:
        """``(key metrics named "[bbox] <prefix>_mAP@50" ..., the full metrics object)``."""
        metrics = self.evaluator.compute()
        return metrics.key_metrics(prefix), metrics

    def write_predictions(self, results_dir: str, name: str) -> str | None:
        """After :meth:`compute`: ``<name>_results.json`` (OD, COCO entries) or
        ``<name>_predictions.json`` (VG) on rank 0; None on other ranks."""
        if self.data_type == "OD":  # compute() gathered every process's entries on rank 0
            if rank() != 0:
                return None
            path = os.path.join(results_dir, f"{name}_results.json")
            return str(write_coco_results(path, self.evaluator.results))
        gathered = gather_to_rank0(self._predictions)
        if gathered is None:
            return None
        path = os.path.join(results_dir, f"{name}_predictions.json")
        # Ranks run contiguous blocks of the data (deploy/parallel.py): rank order is data order.
        atomic_write_json(path, [p for part in gathered for p in part], indent=None)
        return path


def _referring_prediction(target, detections) -> dict:
    arrays = detections.numpy()
    rles = encode_masks(arrays.masks) if arrays.masks is not None else [None] * len(arrays)
    kept = [{"bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(s), "phrase": p,
             **({"segmentation": r} if r is not None else {})}
            for (x1, y1, x2, y2), s, p, r in zip(arrays.boxes, arrays.scores, arrays.phrases, rles)]
    return {"image_id": target.image_id, "expression_id": target.expression_id, "file_name": target.file_name,
            "caption": target.caption, "no_target": bool(detections.no_target), "detections": kept}
