"""Referring-expression (VG) segmentation metrics, TAO's ``VG_Evaluator`` definitions.

Each sample (an image + an expression) is reduced to the union of its predicted
masks and the union of its ground-truth masks:

* IoU per sample; no prediction and no ground truth ("no target" correctly
  recognised) counts as IoU 1, exactly one of them empty as IoU 0;
* ``mIoU`` (gIoU): mean IoU over samples; ``overall_IoU`` (cIoU): total intersection
  / total union;
* ``mAP50`` / ``mAP``: all-point interpolated AP at IoU 0.5 and averaged over
  0.5:0.05:0.95, where each sample with a prediction is one detection scored by
  the mean score of its kept detections, and the positives are the samples with
  a target;
* ``T_acc``: share of samples with a target that got a prediction; ``N_acc``: share
  of no-target samples that got none;
* ``Pr@X``: share of samples with a target whose IoU >= X.

All values are percentages, as TAO logs them. A sample counts as "no prediction"
when the region head flags no target or when no detection reaches
``score_threshold``; the thresholds used are reported with the numbers
(N_acc swings with the score threshold: :attr:`ReferringMetrics.acc_by_threshold`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Hashable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mask_grounding_dino.metrics.coco import PREFIXES
from mask_grounding_dino.writers.coco_results import to_bool_masks, to_numpy
from mask_grounding_dino.metrics.distributed import broadcast_from_rank0, gather_to_rank0

IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
PR_THRESHOLDS = (0.5, 0.7, 0.9)
#: Score thresholds at which T_acc / N_acc are also reported.
CURVE_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class SampleResult:
    """What one referring sample contributes (kept per sample so processes can be merged)."""

    key: Hashable
    gt_empty: bool
    pred_empty: bool
    intersection: int
    union: int
    iou: float
    confidence: float        # mean score of the kept detections (0 when none)
    max_score: float         # best raw score before thresholds (for the accuracy curve)
    flagged_no_target: bool  # the region head said "no target"


@dataclass
class ReferringMetrics:
    """Referring metrics (percentages) plus the counts and thresholds behind them."""

    mIoU: float
    overall_IoU: float
    mAP50: float
    mAP: float
    T_acc: float
    N_acc: float
    pr: dict[float, float]
    num_samples: int
    num_target: int
    num_no_target: int
    thresholds: dict[str, Any]
    acc_by_threshold: dict[float, dict[str, float]] = field(default_factory=dict)

    def key_metrics(self, prefix: str = "val") -> dict[str, float]:
        """TAO keys: ``val_mIoU``, ``val_overall_IoU``, ``val_mAP50``, ``val_mAP``, ``val_T_acc``,
        ``val_N_acc`` and ``val_Pr@0.5`` ... (``test_`` with ``prefix="test"``)."""
        if prefix not in PREFIXES:
            raise ValueError(f"prefix must be one of {PREFIXES}, got {prefix!r}")
        out = {f"{prefix}_{k}": getattr(self, k) for k in ("mIoU", "overall_IoU", "mAP50", "mAP", "T_acc", "N_acc")}
        out.update({f"{prefix}_Pr@{t:g}": v for t, v in self.pr.items()})
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pr"] = {f"Pr@{t:g}": v for t, v in self.pr.items()}
        d["acc_by_threshold"] = {f"{t:g}": v for t, v in self.acc_by_threshold.items()}
        return d

    def summary(self) -> str:
        th = self.thresholds
        lines = [f"Referring evaluation: {self.num_samples} samples "
                 f"({self.num_target} with a target, {self.num_no_target} without)",
                 f"thresholds: score >= {th['score_threshold']:g}, region-head no-target flag "
                 f"{'used' if th['use_no_target'] else 'ignored'}, masks as given (binarised upstream)",
                 f"  mIoU (gIoU)         {self.mIoU:7.2f}",
                 f"  overall IoU (cIoU)  {self.overall_IoU:7.2f}",
                 f"  mAP50               {self.mAP50:7.2f}",
                 f"  mAP (0.5:0.95)      {self.mAP:7.2f}",
                 f"  T_acc               {self._acc(self.T_acc, self.num_target)}",
                 f"  N_acc               {self._acc(self.N_acc, self.num_no_target)}"]
        lines += [f"  Pr@{t:<16g}{v:7.2f}" for t, v in self.pr.items()]
        if self.acc_by_threshold:
            lines.append("  score threshold -> T_acc / N_acc")
            lines += [f"    {t:4.2f}  {v['T_acc']:6.2f} / {v['N_acc']:6.2f}" for t, v in self.acc_by_threshold.items()]
        return "\n".join(lines)

    @staticmethod
    def _acc(value: float, count: int) -> str:
        return f"{value:7.2f}" if count else f"{value:7.2f}  (n/a: no such samples)"


class DetectionsLike(Protocol):
    scores: Any               # [N]
    masks: Any                # [N, H, W] bool (original image size) or None
    no_target: bool


def all_point_ap(confidence: np.ndarray, correct: np.ndarray, num_positives: int) -> np.ndarray:
    """All-point interpolated AP per IoU threshold.

    Args:
        confidence: ``[D]`` score of each detection.
        correct: ``[D, T]`` bool, detection is a true positive at threshold t.
        num_positives: number of ground-truth positives.
    Returns ``[T]`` AP in [0, 1] (zeros when there are no positives).
    """
    n_thr = correct.shape[1]
    if num_positives == 0 or len(confidence) == 0:
        return np.zeros(n_thr)
    order = np.argsort(-confidence, kind="stable")
    tp = np.cumsum(correct[order], axis=0, dtype=np.float64)
    fp = np.cumsum(~correct[order], axis=0, dtype=np.float64)
    recall = tp / num_positives
    precision = tp / np.maximum(tp + fp, 1e-16)
    ap = np.zeros(n_thr)
    for j in range(n_thr):
        r = np.concatenate(([0.0], recall[:, j], [1.0]))
        p = np.concatenate(([0.0], precision[:, j], [0.0]))
        p = np.maximum.accumulate(p[::-1])[::-1]            # precision envelope
        steps = np.nonzero(r[1:] != r[:-1])[0]
        ap[j] = np.sum((r[steps + 1] - r[steps]) * p[steps + 1])
    return ap


def sample_result(pred_masks: Any, scores: Any, gt_mask: Any, *, gt_empty: bool = False,
                  no_target: bool = False, score_threshold: float = 0.0, use_no_target: bool = True,
                  key: Hashable = None) -> SampleResult:
    """Reduce one sample to a :class:`SampleResult`.

    Args:
        pred_masks: ``[N, H, W]`` bool predicted masks (float: > 0.5), or None; same size as ``gt_mask``.
        scores: ``[N]`` detection scores.
        gt_mask: ``[H, W]`` bool union of the ground-truth masks, or None.
        gt_empty: the sample has no target (its ``gt_mask`` is then ignored).
        no_target: the region head flagged "no target".
    """
    scores = to_numpy(scores).astype(np.float64).reshape(-1) if scores is not None else np.zeros(0)
    keep = scores >= score_threshold
    flagged = bool(no_target) and use_no_target
    pred = None
    if not flagged and keep.any() and pred_masks is not None:
        pred = to_bool_masks(pred_masks)[keep].any(0)
    gt = None if gt_empty or gt_mask is None else to_bool_masks(gt_mask)
    if pred is not None and gt is not None and pred.shape != gt.shape:
        raise ValueError(f"predicted masks {pred.shape} and ground truth {gt.shape} differ in size")
    if pred is None and gt is None:
        inter, union, iou = 0, 0, 1.0
    elif pred is None or gt is None:
        inter, union, iou = 0, int((pred if pred is not None else gt).sum()), 0.0
    else:
        inter, union = int((pred & gt).sum()), int((pred | gt).sum())
        iou = inter / union if union else 1.0          # both masks blank: nothing to disagree on
    return SampleResult(key=key, gt_empty=gt is None, pred_empty=pred is None, intersection=inter, union=union,
                        iou=float(iou), confidence=float(scores[keep].mean()) if pred is not None else 0.0,
                        max_score=float(scores.max()) if len(scores) else 0.0, flagged_no_target=flagged)


def compute_referring_metrics(samples: Sequence[SampleResult], *, score_threshold: float = 0.0,
                              use_no_target: bool = True,
                              iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
                              pr_thresholds: Sequence[float] = PR_THRESHOLDS,
                              curve_thresholds: Sequence[float] = CURVE_THRESHOLDS) -> ReferringMetrics:
    """Aggregate per-sample results into :class:`ReferringMetrics` (percentages)."""
    n = len(samples)
    gt_empty = np.array([s.gt_empty for s in samples], dtype=bool)
    pred_empty = np.array([s.pred_empty for s in samples], dtype=bool)
    iou = np.array([s.iou for s in samples], dtype=np.float64)
    inter = sum(s.intersection for s in samples)
    union = sum(s.union for s in samples)
    has_pred = ~pred_empty
    correct = iou[has_pred, None] >= np.asarray(iou_thresholds)[None, :] - 1e-9    # exact ties count
    conf = np.array([s.confidence for s in samples], dtype=np.float64)[has_pred]
    ap = all_point_ap(conf, correct, int((~gt_empty).sum()))
    target_iou = iou[~gt_empty]

    def share(mask: np.ndarray) -> float:
        return 100.0 * float(mask.mean()) if mask.size else 0.0

    curve = {}
    max_score = np.array([s.max_score for s in samples], dtype=np.float64)
    flagged = np.array([s.flagged_no_target for s in samples], dtype=bool)
    for t in curve_thresholds:
        if t < score_threshold:
            continue      # masks below the evaluation threshold were never kept
        empty_t = pred_empty | flagged | (max_score < t)
        curve[float(t)] = {"T_acc": share(~empty_t[~gt_empty]), "N_acc": share(empty_t[gt_empty])}
    return ReferringMetrics(
        mIoU=100.0 * float(iou.mean()) if n else 0.0,
        overall_IoU=100.0 * inter / union if union else 0.0,
        mAP50=100.0 * float(ap[0]), mAP=100.0 * float(ap.mean()),
        T_acc=share(has_pred[~gt_empty]), N_acc=share(pred_empty[gt_empty]),
        pr={float(t): share(target_iou >= t - 1e-9) for t in pr_thresholds},
        num_samples=n, num_target=int((~gt_empty).sum()), num_no_target=int(gt_empty.sum()),
        thresholds={"score_threshold": float(score_threshold), "use_no_target": bool(use_no_target),
                    "iou_thresholds": [float(t) for t in iou_thresholds]},
        acc_by_threshold=curve)


def _gt_union_at_original_size(target: Any) -> np.ndarray | None:
    """Union of a batch target's masks, cropped to its unpadded size and resized (nearest)
    to the original image size, as TAO does; None for no-target samples."""
    masks = getattr(target, "masks", None)
    if getattr(target, "empty", False) or masks is None or len(masks) == 0:
        return None
    h, w = (int(s) for s in target.size)
    oh, ow = (int(s) for s in target.orig_size)
    union = torch.as_tensor(masks)[:, :h, :w].any(0).float()[None, None]
    return (F.interpolate(union, size=(oh, ow), mode="nearest")[0, 0] > 0.5).cpu().numpy()


class ReferringEvaluator:
    """Accumulate referring samples, then compute :class:`ReferringMetrics` across processes.

    Args:
        score_threshold: detections below it are dropped before the union
            (the evaluate spec's ``conf_threshold``); reported with the numbers.
        use_no_target: treat the region head's no-target flag as "no prediction".
        pr_thresholds, curve_thresholds: Pr@X thresholds; score thresholds for the
            T_acc / N_acc curve.
    """

    def __init__(self, *, score_threshold: float = 0.0, use_no_target: bool = True,
                 pr_thresholds: Sequence[float] = PR_THRESHOLDS,
                 curve_thresholds: Sequence[float] = CURVE_THRESHOLDS):
        self.score_threshold = float(score_threshold)
        self.use_no_target = bool(use_no_target)
        self.pr_thresholds = tuple(pr_thresholds)
        self.curve_thresholds = tuple(curve_thresholds)
        self.reset()

    def reset(self) -> None:
        self._samples: dict[Hashable, SampleResult] = {}
        self._anonymous: list[SampleResult] = []

    def update_sample(self, pred_masks: Any, scores: Any, gt_mask: Any, *, gt_empty: bool = False,
                      no_target: bool = False, key: Hashable = None) -> SampleResult:
        """Add one sample (arrays at the original image size). Samples with a ``key`` seen
        before are ignored (distributed samplers may repeat samples)."""
        result = sample_result(pred_masks, scores, gt_mask, gt_empty=gt_empty, no_target=no_target,
                               score_threshold=self.score_threshold, use_no_target=self.use_no_target, key=key)
        if key is None:
            self._anonymous.append(result)
        else:
            self._samples.setdefault(key, result)
        return result

    def update(self, detections: Sequence[DetectionsLike], targets: Sequence[Any]) -> None:
        """Add a batch: post-processed ``Detections`` and the batch's targets (``masks``, ``size``,
        ``orig_size``, ``empty``, ``image_id``, ``caption``). The sample key is
        ``(image_id, expression id or caption)``."""
        if len(detections) != len(targets):
            raise ValueError(f"update: {len(detections)} detections for {len(targets)} targets")
        for det, t in zip(detections, targets):
            expr = getattr(t, "sent_id", None) or getattr(t, "expression_id", None) or getattr(t, "caption", None)
            image_id = getattr(t, "image_id", None)
            key = (str(image_id), str(expr)) if image_id is not None and expr is not None else None
            gt = _gt_union_at_original_size(t)
            self.update_sample(getattr(det, "masks", None), det.scores, gt, gt_empty=gt is None,
                               no_target=bool(getattr(det, "no_target", False)), key=key)

    def compute(self) -> ReferringMetrics:
        """Gather every process's samples, compute on rank 0, return the same metrics everywhere."""
        gathered = gather_to_rank0((self._samples, self._anonymous))
        metrics = None
        if gathered is not None:
            merged: dict[Hashable, SampleResult] = {}
            anonymous: list[SampleResult] = []
            for keyed, anon in gathered:
                for k, v in keyed.items():
                    merged.setdefault(k, v)
                anonymous += anon
            metrics = compute_referring_metrics(list(merged.values()) + anonymous,
                                                score_threshold=self.score_threshold,
                                                use_no_target=self.use_no_target,
                                                pr_thresholds=self.pr_thresholds,
                                                curve_thresholds=self.curve_thresholds)
        return broadcast_from_rank0(metrics)
