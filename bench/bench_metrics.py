"""Time the evaluation path: COCO bbox+segm with pycocotools vs faster-coco-eval, and the criterion.

    python bench/bench_metrics.py [--images 200] [--queries 900]

Synthetic data (rectangles and ellipses, noisy predictions); prints wall times and
the largest difference between the two COCO engines over the 24 numbers.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from mask_grounding_dino.data.records import CocoAnnotation, CocoDataset, CocoImage
from mask_grounding_dino.metrics import CocoEvaluator
from mask_grounding_dino.writers import encode_masks
from mask_grounding_dino.model.criterion import SetCriterion
from mask_grounding_dino.model.outputs import GroundingOutputs, LayerPrediction


@dataclass
class _Dets:
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


def _ellipse(h: int, w: int, box: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cx, cy, rx, ry = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return ((xx - cx) / max(rx, 1)) ** 2 + ((yy - cy) / max(ry, 1)) ** 2 <= 1


def synthetic_set(n_images: int, seed: int = 0, h: int = 240, w: int = 320):
    rng = np.random.default_rng(seed)
    images, anns, preds = [], [], {}
    for img_id in range(1, n_images + 1):
        images.append(CocoImage(id=img_id, file_name=f"{img_id}.jpg", height=h, width=w))
        boxes, scores, labels, masks = [], [], [], []
        for _ in range(int(rng.integers(2, 12))):
            bw, bh = rng.uniform(10, 150), rng.uniform(10, 150)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = np.array([x, y, x + bw, y + bh])
            mask = _ellipse(h, w, box)
            cat = int(rng.integers(0, 5))
            anns.append(CocoAnnotation(id=len(anns) + 1, image_id=img_id, category_id=cat,
                                       bbox=(x, y, bw, bh), segmentation=encode_masks(mask[None])[0],
                                       area=float(mask.sum())))
            for _ in range(int(rng.integers(1, 4))):            # duplicates and near misses
                noisy = box + rng.normal(0, 6, 4)
                boxes.append(noisy)
                scores.append(rng.uniform(0, 1))
                labels.append(cat if rng.random() < 0.85 else int(rng.integers(0, 5)))
                masks.append(_ellipse(h, w, noisy))
        preds[img_id] = _Dets(torch.tensor(np.array(boxes), dtype=torch.float32), torch.tensor(scores),
                              torch.tensor(labels), torch.from_numpy(np.stack(masks)))
    gt = CocoDataset(images=images, annotations=anns, categories={i: f"c{i}" for i in range(5)})
    return gt, preds


def bench_coco(n_images: int) -> None:
    t0 = time.perf_counter()
    gt, preds = synthetic_set(n_images)
    print(f"synthetic set: {n_images} images, {len(gt.annotations)} objects, "
          f"{sum(len(p.scores) for p in preds.values())} detections ({time.perf_counter() - t0:.1f} s to build)")
    stats = {}
    for engine in ("pycocotools", "faster_coco_eval"):
        ev = CocoEvaluator(gt, list(range(5)), engine=engine)
        t0 = time.perf_counter()
        ev.update(sorted(preds), [preds[i] for i in sorted(preds)])
        t1 = time.perf_counter()
        metrics = ev.compute()
        t2 = time.perf_counter()
        stats[engine] = metrics.stats
        print(f"{engine:>17}: update (RLE encode) {t1 - t0:6.2f} s, compute bbox+segm {t2 - t1:6.2f} s, "
              f"bbox mAP {metrics.stats['bbox'][0]:.4f}, segm mAP {metrics.stats['segm'][0]:.4f}")
    diff = max(abs(a - b) for iou in ("bbox", "segm")
               for a, b in zip(stats["pycocotools"][iou], stats["faster_coco_eval"][iou]))
    print(f"largest difference between the engines over 24 numbers: {diff:.3g}")


def bench_criterion(queries: int, batch: int = 2, tokens: int = 256, n_targets: int = 20, repeats: int = 3) -> None:
    g = torch.Generator().manual_seed(0)
    h4, w4 = 200 // 4 * 2, 336 // 4 * 2      # 800 x 1344 input -> masks at H/4

    @dataclass
    class _T:
        boxes: torch.Tensor
        positive_map: torch.Tensor
        masks: torch.Tensor
        size: tuple
        empty: bool = False

    targets = []
    for _ in range(batch):
        pm = torch.zeros(n_targets, tokens)
        pm[torch.arange(n_targets), torch.randint(1, 60, (n_targets,), generator=g)] = 1.0
        targets.append(_T(boxes=torch.rand(n_targets, 4, generator=g) * 0.4 + 0.3, positive_map=pm,
                          masks=torch.rand(n_targets, 4 * h4, 4 * w4, generator=g) > 0.5, size=(4 * h4, 4 * w4)))
    mask_logits = torch.randn(6, batch, queries, h4, w4, generator=g)

    def outputs() -> GroundingOutputs:
        return GroundingOutputs(
            pred_logits=torch.randn(batch, queries, tokens, generator=g),
            pred_boxes=torch.rand(batch, queries, 4, generator=g),
            text_mask=torch.ones(batch, tokens, dtype=torch.bool),
            aux_outputs=[LayerPrediction(torch.randn(batch, queries, tokens, generator=g),
                                         torch.rand(batch, queries, 4, generator=g)) for _ in range(5)],
            enc_outputs=LayerPrediction(torch.randn(batch, queries, tokens, generator=g),
                                        torch.rand(batch, queries, 4, generator=g)),
            mask_fn=lambda layer, b, q: mask_logits[layer][b, q])

    crit = SetCriterion(loss_types=["labels", "boxes", "masks"])
    times = []
    for _ in range(repeats):
        out = outputs()
        t0 = time.perf_counter()
        crit(out, targets)
        times.append(time.perf_counter() - t0)
    print(f"criterion (CPU): B={batch}, Q={queries}, T={tokens}, {n_targets} targets/image, 7 matched layers, "
          f"masks {h4}x{w4}: {min(times) * 1000:.0f} ms per call (best of {repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--queries", type=int, default=900)
    args = parser.parse_args()
    bench_coco(args.images)
    bench_criterion(args.queries)


if __name__ == "__main__":
    main()
