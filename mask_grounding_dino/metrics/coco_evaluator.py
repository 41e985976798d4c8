"""Streaming COCO evaluator for validation / test loops (single or multi-process).

``update`` turns each image's ``Detections`` into COCO result entries at once
(masks become RLE, so memory stays small); ``compute`` gathers every process's
entries on rank 0, keeps one copy per image (distributed samplers may repeat
images to even out shards), evaluates the images seen with pycocotools and
broadcasts the :class:`CocoMetrics` to all processes.
"""

from __future__ import annotations

from typing import Sequence

from mask_grounding_dino.metrics.coco import IOU_TYPES, CocoMetrics, evaluate_coco
from mask_grounding_dino.metrics.coco_results import GroundTruth, load_ground_truth
from mask_grounding_dino.metrics.distributed import broadcast_from_rank0, gather_to_rank0
from mask_grounding_dino.writers.coco_results import DetectionsLike, LabelToCategory, detections_to_coco


class CocoEvaluator:
    """Accumulate detections batch by batch, then compute COCO bbox/segm metrics.

    Args:
        gt: ground truth (:class:`CocoDataset`, COCO json path or ``COCO``).
        label_to_category: predicted label (phrase index) -> category id.
        iou_types: ``("bbox", "segm")`` etc.; None = bbox, plus segm when any detection had masks.
        engine: ``pycocotools`` or ``faster_coco_eval``.
    """

    def __init__(self, gt: GroundTruth, label_to_category: LabelToCategory,
                 iou_types: Sequence[str] | None = None, engine: str = "pycocotools"):
        if iou_types is not None and (not iou_types or any(t not in IOU_TYPES for t in iou_types)):
            raise ValueError(f"iou_types must be a non-empty subset of {IOU_TYPES}, got {list(iou_types)}")
        self.gt = load_ground_truth(gt)
        self.label_to_category = label_to_category
        self.iou_types = tuple(iou_types) if iou_types is not None else None
        self.engine = engine
        self.reset()

    def reset(self) -> None:
        self._results: dict[int, list[dict]] = {}
        self._saw_masks = False
        self.results: list[dict] = []   # after compute, on rank 0: every image's entries, by image id

    def update(self, image_ids: Sequence[int], detections: Sequence[DetectionsLike]) -> None:
        """Add one batch: ``image_ids[i]`` is the COCO image id of ``detections[i]``."""
        if len(image_ids) != len(detections):
            raise ValueError(f"update: {len(image_ids)} image ids for {len(detections)} detections")
        want_masks = self.iou_types is None or "segm" in self.iou_types
        for image_id, det in zip(image_ids, detections):
            image_id = int(image_id)
            if image_id in self._results:       # a repeated image: keep the first
                continue
            has_masks = want_masks and getattr(det, "masks", None) is not None
            self._saw_masks |= has_masks
            self._results[image_id] = detections_to_coco(image_id, det, self.label_to_category,
                                                         with_masks=has_masks)

    def compute(self) -> CocoMetrics:
        """Gather, evaluate on rank 0 and return the same metrics on every process."""
        gathered = gather_to_rank0((self._results, self._saw_masks))
        metrics = None
        if gathered is not None:
            merged: dict[int, list[dict]] = {}
            for part, _ in gathered:
                for image_id, entries in part.items():
                    merged.setdefault(image_id, entries)
            saw_masks = any(s for _, s in gathered)
            iou_types = self.iou_types or (("bbox", "segm") if saw_masks else ("bbox",))
            results = [r for image_id in sorted(merged) for r in merged[image_id]]
            self.results = results
            metrics = evaluate_coco(self.gt, results, iou_types, image_ids=sorted(merged), engine=self.engine)
        return broadcast_from_rank0(metrics)
