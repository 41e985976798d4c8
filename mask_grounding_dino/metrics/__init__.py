"""Evaluation metrics: COCO bbox/segm (pycocotools is the referee) and referring (VG) metrics."""

from mask_grounding_dino.metrics.coco import STAT_NAMES, ClassAP, CocoMetrics, evaluate_coco
from mask_grounding_dino.metrics.coco_evaluator import CocoEvaluator
from mask_grounding_dino.metrics.coco_results import load_ground_truth
from mask_grounding_dino.metrics.referring import (
    ReferringEvaluator,
    ReferringMetrics,
    compute_referring_metrics,
    sample_result,
)
from mask_grounding_dino.metrics.report import write_evaluation_report
from mask_grounding_dino.metrics.scoring import DatasetScoring

__all__ = [
    "STAT_NAMES", "ClassAP", "CocoMetrics", "evaluate_coco", "CocoEvaluator", "DatasetScoring",
    "load_ground_truth", "ReferringEvaluator", "ReferringMetrics",
    "compute_referring_metrics", "sample_result", "write_evaluation_report",
]
