"""Measure two places where TAO's Mask Grounding DINO differs from ours, on a trained model.

1. Box reference at evaluation. TAO's eval/export branch adds the last decoder layer's box
   delta to the reference that entered the layer BEFORE it (``inter_references[lvl - 1]``);
   its training branch (and ours, the original DINO, transformers) uses the reference that
   entered the last layer itself. Reported: held-out bbox / segm mAP@50 with each rule.
2. Text-enhancer phrase mask in a batch. TAO builds the per-head mask with
   ``src_mask.repeat(nhead, 1, 1)``, which multi-head attention reads batch-major, so head ``h``
   of image ``b`` gets the mask of image ``(b * nhead + h) % B``. With one class list per batch
   (evaluate, inference) all images share the mask and nothing changes; with a different caption
   per image (here: the class names in a random order per image) some heads see another image's
   phrase boundaries. Reported: mAP@50 with ours, with TAO's rule, and at batch size 1 (where the
   two rules are the same), plus how many top detections change.

    python bench/tao_deviations.py --checkpoint runs/quickstart/train/mask_gdino_model_latest.pth \
        --spec runs/quickstart/spec.yaml [--batch-size 8] [--out bench/results/tao_deviations.json]

Prints a table and writes the JSON; the numbers go into mask_grounding_dino/config/deviations.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import subprocess
import sys

import torch

from mask_grounding_dino import Predictor
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.data.loaders import build_dataloader, build_dataset
from mask_grounding_dino.metrics import CocoEvaluator
from mask_grounding_dino.model.encoder import TextEnhancerLayer
from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO
from mask_grounding_dino.model.postprocess import PostProcessor, PromptLayout
from mask_grounding_dino.model.results import Detections


@contextlib.contextmanager
def tao_eval_box_rule():
    """The last layer's boxes from the reference that entered the layer before it (TAO's eval branch)."""
    original = MaskGroundingDINO._layer_prediction

    def shifted(self, out, layer, text):
        if self.training or layer == 0:
            return original(self, out, layer, text)
        refs = list(out.references)
        refs[layer] = refs[layer - 1]
        return original(self, dataclasses.replace(out, references=refs), layer, text)

    MaskGroundingDINO._layer_prediction = shifted
    try:
        yield
    finally:
        MaskGroundingDINO._layer_prediction = original


@contextlib.contextmanager
def tao_text_mask_rule():
    """Per-head phrase masks laid out as TAO's ``repeat(nhead, 1, 1)`` read batch-major."""
    original = TextEnhancerLayer.forward

    def tao_forward(self, src, pos, blocked):
        b, length, _ = blocked.shape
        heads = self.self_attn.num_heads
        per_head = blocked.repeat(heads, 1, 1).view(b, heads, length, length)   # [b, h] = blocked[(b*H+h) % B]
        return original(self, src, pos, per_head)

    TextEnhancerLayer.forward = tao_forward
    try:
        yield
    finally:
        TextEnhancerLayer.forward = original


def _loader(cfg, text_processor, batch_size):
    dataset = build_dataset(cfg, "test", text_processor=text_processor)
    return dataset, build_dataloader(cfg, "test", dataset=dataset, text_processor=text_processor,
                                     batch_size=batch_size)


@torch.no_grad()
def shared_caption_map(model, cfg, text_processor, batch_size) -> dict[str, float]:
    """evaluate's setting: every image prompted with the class list in id order."""
    dataset, loader = _loader(cfg, text_processor, batch_size)
    categories = dict(dataset.categories)
    post = PostProcessor.from_config(cfg.model, cfg.evaluate)
    layout = PromptLayout.from_phrases(list(categories.values()), text_processor)
    evaluator = CocoEvaluator(cfg.dataset.test_data_sources.json_file, list(categories))
    for batch in loader:
        out = model(batch.images, *batch.text.as_tuple(), pixel_mask=batch.pixel_mask)
        dets = post(out, [layout] * len(batch), [t.orig_size for t in batch.targets],
                    [t.size for t in batch.targets])
        evaluator.update([t.image_id for t in batch.targets], dets)
    return _map50(evaluator.compute())


@torch.no_grad()
def mixed_caption_run(model, cfg, text_processor, batch_size, seed=0):
    """Each image prompted with its own caption: the class names in a random order with 0-3
    extra phrases of different lengths among them (as training captions differ: other phrase
    boundaries per image, which is what TAO's batch mask mixes up; permuting equally long class
    names alone leaves every image's mask the same). Detections of extra phrases are dropped;
    labels are mapped back to class ids."""
    dataset, loader = _loader(cfg, text_processor, batch_size)
    categories = dict(dataset.categories)
    names = list(categories.values())
    index_of = {name: i for i, name in enumerate(names)}
    post = PostProcessor.from_config(cfg.model, cfg.evaluate)
    evaluator = CocoEvaluator(cfg.dataset.test_data_sources.json_file, list(categories))
    rng = random.Random(seed)
    top = {}
    for batch in loader:
        orders = [_with_distractors(rng.sample(names, len(names)), rng) for _ in batch.targets]
        layouts = [PromptLayout.from_phrases(order, text_processor) for order in orders]
        text = text_processor([layout.caption for layout in layouts])
        out = model(batch.images, *text.as_tuple(), pixel_mask=batch.pixel_mask)
        dets = post(out, layouts, [t.orig_size for t in batch.targets], [t.size for t in batch.targets])
        mapped = []
        for det, order, target in zip(dets, orders, batch.targets):
            keep = torch.tensor([order[int(i)] in index_of for i in det.labels], dtype=torch.bool)
            det = det.select(keep)
            labels = torch.tensor([index_of[order[int(i)]] for i in det.labels], dtype=torch.long)
            mapped.append(dataclasses.replace(det, labels=labels))
            if len(det.scores):
                best = int(det.scores.argmax())
                top[int(target.image_id)] = (int(labels[best]), float(det.scores[best]))
        evaluator.update([t.image_id for t in batch.targets], mapped)
    return _map50(evaluator.compute()), top


#: Extra phrases of 1 to 4 words: none is a class of the quickstart data.
DISTRACTORS = ("object", "wooden table", "a small grey stone", "the sky above the old town")


def _with_distractors(order: list[str], rng: random.Random) -> list[str]:
    out = list(order)
    for phrase in rng.sample(DISTRACTORS, rng.randint(0, 3)):
        out.insert(rng.randint(0, len(out)), phrase)
    return out


def _map50(metrics) -> dict[str, float]:
    keys = metrics.key_metrics("test")
    return {k: round(float(v), 4) for k, v in keys.items() if k.endswith("_mAP@50")}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--spec", required=True, help="the spec the model was trained with (quickstart: spec.yaml)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/tao_deviations.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_spec(args.spec)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu", spec=cfg)
    model, tp = predictor.backend.model.eval(), predictor.backend.text_processor
    load = _uptime()

    ours = shared_caption_map(model, cfg, tp, args.batch_size)
    with tao_eval_box_rule():
        tao_box = shared_caption_map(model, cfg, tp, args.batch_size)
    mixed_ours, top_ours = mixed_caption_run(model, cfg, tp, args.batch_size)
    with tao_text_mask_rule():
        mixed_tao, top_tao = mixed_caption_run(model, cfg, tp, args.batch_size)
    mixed_single, _ = mixed_caption_run(model, cfg, tp, 1)
    changed = sum(1 for k in top_ours if top_tao.get(k, (None,))[0] != top_ours[k][0])
    score_shift = [abs(top_ours[k][1] - top_tao[k][1]) for k in top_ours if k in top_tao]

    result = {
        "checkpoint": args.checkpoint, "batch_size": args.batch_size, "load": load,
        "box_rule": {"ours": ours, "tao_eval": tao_box},
        "mixed_captions": {"ours": mixed_ours, "tao_mask": mixed_tao, "batch_1": mixed_single,
                           "top1_label_changed": f"{changed}/{len(top_ours)}",
                           "top1_score_shift_mean": round(sum(score_shift) / max(1, len(score_shift)), 4)},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    rows = [("eval box rule: ours", ours), ("eval box rule: TAO", tao_box),
            (f"mixed captions, batch {args.batch_size}: ours", mixed_ours),
            (f"mixed captions, batch {args.batch_size}: TAO mask", mixed_tao),
            ("mixed captions, batch 1 (rules equal)", mixed_single)]
    print(f"machine load: {load}")
    print(f"{'setting':48s} {'[bbox] mAP@50':>14s} {'[segm] mAP@50':>14s}")
    for name, values in rows:
        print(f"{name:48s} {values.get('[bbox] test_mAP@50', float('nan')):14.4f} "
              f"{values.get('[segm] test_mAP@50', float('nan')):14.4f}")
    print(f"top-1 label changed by TAO's mask: {changed}/{len(top_ours)} images; "
          f"mean top-1 score shift {result['mixed_captions']['top1_score_shift_mean']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
