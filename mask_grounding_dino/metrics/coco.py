"""COCO bbox / segm AP and AR, computed by pycocotools' ``COCOeval`` itself.

pycocotools is the referee: the 12 numbers per IoU type are exactly
``COCOeval.stats`` (``engine="faster_coco_eval"`` swaps in faster-coco-eval, whose
numbers a test checks against pycocotools). On top of them:

* TAO's metric keys: ``[bbox] val_mAP@50``, ``[segm] test_mAP@50-95``, ... (:meth:`CocoMetrics.key_metrics`);
* a per-category table (AP and AP50, area "all", 100 detections);
* a readable summary.

Values follow pycocotools: fractions in [0, 1], and -1 where a number is
undefined (e.g. no ground truth in an area range).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval

from mask_grounding_dino.metrics.coco_results import GroundTruth, load_ground_truth, load_results, split_by_iou_type

#: Names of ``COCOeval.stats[0..11]`` in TAO's key style.
STAT_NAMES = ("mAP@50-95", "mAP@50", "mAP@75", "mAP_small", "mAP_medium", "mAP_large",
              "AR@1", "AR@10", "AR@100", "AR_small", "AR_medium", "AR_large")
IOU_TYPES = ("bbox", "segm")
PREFIXES = ("val", "test")
ENGINES = ("pycocotools", "faster_coco_eval")


@dataclass
class ClassAP:
    """One row of the per-category table (area "all", up to 100 detections per image)."""

    category_id: int
    name: str
    num_gt: int
    ap: float        # AP@[.5:.95]; -1 when the category has no ground truth
    ap50: float


@dataclass
class CocoMetrics:
    """COCO evaluation of one prediction set.

    ``stats[iou_type]``: the 12 ``COCOeval.stats`` numbers; ``per_class[iou_type]``: the table.
    """

    stats: dict[str, list[float]]
    per_class: dict[str, list[ClassAP]] = field(default_factory=dict)
    num_images: int = 0
    num_detections: int = 0
    engine: str = "pycocotools"

    def key_metrics(self, prefix: str = "val") -> dict[str, float]:
        """TAO-named numbers, e.g. ``{"[bbox] val_mAP@50": 0.61, "[segm] val_AR@100": ...}``."""
        if prefix not in PREFIXES:
            raise ValueError(f"prefix must be one of {PREFIXES}, got {prefix!r}")
        return {f"[{iou}] {prefix}_{name}": float(value)
                for iou, values in self.stats.items() for name, value in zip(STAT_NAMES, values)}

    def to_dict(self) -> dict:
        return {"engine": self.engine, "num_images": self.num_images, "num_detections": self.num_detections,
                "stats": {iou: dict(zip(STAT_NAMES, v)) for iou, v in self.stats.items()},
                "per_class": {iou: [asdict(r) for r in rows] for iou, rows in self.per_class.items()}}

    def summary(self) -> str:
        """COCO-style text: the 12 numbers per IoU type, then the per-category table."""
        lines = [f"COCO evaluation ({self.engine}): {self.num_images} images, {self.num_detections} detections"]
        for iou, values in self.stats.items():
            lines.append(f"[{iou}]")
            lines += [f"  {name:<11} {value:7.4f}" for name, value in zip(STAT_NAMES, values)]
            rows = self.per_class.get(iou, [])
            if rows:
                width = max(8, max(len(r.name) for r in rows))
                lines.append(f"  {'category':<{width}}  {'id':>5}  {'gt':>6}  {'AP':>7}  {'AP50':>7}")
                lines += [f"  {r.name:<{width}}  {r.category_id:>5}  {r.num_gt:>6}  {r.ap:7.4f}  {r.ap50:7.4f}"
                          for r in rows]
        return "\n".join(lines)


def _per_class(ev, gt) -> list[ClassAP]:
    """AP / AP50 per category from ``eval['precision'] [T, R, K, A, M]`` (area all, last maxDets)."""
    precision = np.asarray(ev.eval["precision"])
    cat_ids = list(ev.params.catIds)
    iou_thrs = np.asarray(ev.params.iouThrs)
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    rows = []
    for k, cat_id in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        p50 = p[t50]
        num_gt = len(gt.getAnnIds(catIds=[cat_id], iscrowd=False))
        rows.append(ClassAP(category_id=int(cat_id), name=str(gt.cats.get(cat_id, {}).get("name", cat_id)),
                            num_gt=num_gt,
                            ap=float(p[p > -1].mean()) if (p > -1).any() else -1.0,
                            ap50=float(p50[p50 > -1].mean()) if (p50 > -1).any() else -1.0))
    return rows


def _run_pycocotools(gt, results, iou_type, image_ids):
    dt = load_results(gt, results)
    ev = COCOeval(gt, dt, iou_type)
    if image_ids is not None:
        ev.params.imgIds = list(image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats], _per_class(ev, gt)


def _run_faster(gt, results, iou_type, image_ids):
    from faster_coco_eval import COCO as FastCOCO, COCOeval_faster

    fast_gt = FastCOCO(gt.dataset, use_deepcopy=True)   # never mutate the shared GT
    fast_dt = fast_gt.loadRes(list(results)) if results else None
    if fast_dt is None:     # same empty-result path as pycocotools
        return _run_pycocotools(gt, results, iou_type, image_ids)
    ev = COCOeval_faster(fast_gt, fast_dt, iou_type, print_function=lambda *a, **k: None)
    if image_ids is not None:
        ev.params.imgIds = list(image_ids)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(s) for s in ev.stats[:12]], _per_class(ev, gt)


def evaluate_coco(gt: GroundTruth, results: Sequence[dict], iou_types: Sequence[str] = ("bbox",),
                  image_ids: Sequence[int] | None = None, engine: str = "pycocotools") -> CocoMetrics:
    """Evaluate COCO result entries (see ``coco_results``) against the ground truth.

    Args:
        gt: a :class:`CocoDataset`, a COCO json path or a ``COCO`` object.
        results: result entries; ``segm`` uses those carrying ``segmentation``.
        iou_types: subset of ``bbox``, ``segm``.
        image_ids: images to evaluate (default: every ground-truth image). A streaming
            evaluator passes the images it saw.
        engine: ``pycocotools`` (reference) or ``faster_coco_eval``.
    """
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad or not iou_types:
        raise ValueError(f"iou_types must be a non-empty subset of {IOU_TYPES}, got {list(iou_types)}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    coco_gt = load_ground_truth(gt)
    unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
    if unknown:
        raise ValueError(f"{len(unknown)} predicted image id(s) are not in the ground truth, "
                         f"e.g. {sorted(unknown)[:5]}")
    run = _run_pycocotools if engine == "pycocotools" else _run_faster
    stats, per_class = {}, {}
    for iou_type in iou_types:
        stats[iou_type], per_class[iou_type] = run(coco_gt, split_by_iou_type(results, iou_type), iou_type,
                                                   image_ids)
    n_images = len(image_ids) if image_ids is not None else len(coco_gt.getImgIds())
    return CocoMetrics(stats=stats, per_class=per_class, num_images=n_images,
                       num_detections=len(results), engine=engine)
