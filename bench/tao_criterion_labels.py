"""How often TAO's criterion gives an auxiliary layer the wrong class target, on a trained model.

TAO's Mask Grounding DINO criterion keeps one list of target labels per image and overwrites it
with each layer's match (``tgt_ids[i] = tgt_ids[i][indices[i][1]]``, for the last layer, then each
auxiliary layer, then the encoder proposals). From the second layer on, the label a query is
trained towards is therefore the label of target ``perm_1[perm_2[...[perm_l[k]]]]`` instead of
target ``perm_l[k]``: correct only where the composed permutation lands on a target of the same
class. Ours (standard DETR, the original Grounding DINO) matches each layer on its own.

This script runs the trained model on training batches (eval mode: the matches the loss sees
at the end of training, without denoising queries), matches every layer with the model's
matcher, and counts the matched queries whose class target differs under TAO's rule.

    python bench/tao_criterion_labels.py --checkpoint runs/quickstart/train/mask_gdino_model_latest.pth \
        --spec runs/quickstart/spec.yaml [--batches 8] [--out bench/results/tao_criterion_labels.json]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from mask_grounding_dino import Predictor
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.data.loaders import build_dataloader
from mask_grounding_dino.model.matcher import HungarianMatcher


def tao_targets(labels: torch.Tensor, matches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The class target of each matched query per layer under TAO's in-place rule.

    ``labels [N]``: the image's target labels; ``matches``: each layer's ``(query_idx, target_idx)``
    in TAO's order. Returns one ``[K]`` tensor per layer.
    """
    running, out = labels.clone(), []
    for _, tgt in matches:
        running = running[tgt]
        out.append(running.clone())
    return out


@torch.no_grad()
def count_wrong_targets(model, loader, matcher, batches: int) -> dict:
    per_layer: dict[str, list[int]] = {}
    for b, batch in enumerate(loader):
        if b == batches:
            break
        out = model(batch.images, *batch.text.as_tuple(), pixel_mask=batch.pixel_mask)
        layers = [("last", out.pred_logits, out.pred_boxes)]
        layers += [(f"aux_{i}", a.pred_logits, a.pred_boxes) for i, a in enumerate(out.aux_outputs)]
        if out.enc_outputs is not None:
            layers.append(("interm", out.enc_outputs.pred_logits, out.enc_outputs.pred_boxes))
        matched = [matcher(logits, boxes, batch.targets, out.text_mask) for _, logits, boxes in layers]
        for i, target in enumerate(batch.targets):
            if target.empty or not len(target.labels):
                continue
            image_matches = [m[i] for m in matched]
            tao = tao_targets(target.labels.cpu(), image_matches)
            for (name, _, _), (_, tgt), theirs in zip(layers, image_matches, tao):
                ours = target.labels.cpu()[tgt]
                wrong, total = per_layer.setdefault(name, [0, 0])
                per_layer[name] = [wrong + int((ours != theirs).sum()), total + int(len(tgt))]
    return {name: {"wrong": w, "matched": n, "fraction": round(w / max(n, 1), 4)} for name, (w, n) in per_layer.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--spec", required=True, help="the spec the model was trained with (quickstart: spec.yaml)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="bench/results/tao_criterion_labels.json")
    args = parser.parse_args(argv)
    cfg = load_spec(args.spec)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu", spec=cfg)
    model, tp = predictor.backend.model.eval(), predictor.backend.text_processor
    loader = build_dataloader(cfg, "train", text_processor=tp, batch_size=args.batch_size, seed=0)
    result = count_wrong_targets(model, loader, HungarianMatcher.from_config(cfg.model), args.batches)
    print(f"{'layer':10s} {'wrong class targets':>22s}")
    for name, row in result.items():
        print(f"{name:10s} {row['wrong']:>8d} / {row['matched']:<6d} ({100 * row['fraction']:.1f} %)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"checkpoint": args.checkpoint, "batches": args.batches, "layers": result}, handle, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
