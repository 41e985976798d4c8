"""``mask_grounding_dino quickstart``: the whole workflow on the built-in dataset, on a CPU.

1. generate the synthetic dataset (coloured shapes named by colour and shape words) in TAO's
   layout under ``<out>/data``;
2. train the CPU preset (``presets/quickstart.yaml``, a TAO-format spec) on ``data/train``;
3. evaluate on the held-out ``data/val`` images (COCO bbox + segm);
4. run inference on a few held-out images, writing annotated pictures and label files;
5. measure prompt selectivity: each category asked for alone on held-out images;
6. print where everything is.

Every step uses the public actions with a spec written to ``<out>/spec.yaml`` (its
``results_dir`` is ``<out>``, so the actions write to ``<out>/train``, ``<out>/evaluate`` and
``<out>/inference``), and each one can be rerun by hand (``mask_grounding_dino evaluate -e
<out>/spec.yaml``). Quickstart marks the folders it creates (``.mask_grounding_dino_quickstart``)
and writes into, or deletes with ``--fresh``, no other non-empty folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from importlib import resources

import yaml

from ..config import load_spec, save_spec, spec_to_dict
from ..errors import UserError
from ..utils.atomic import atomic_write_json
from .common import print_table
from .folders import action_folder
from ..utils.log import get_logger

log = get_logger(__name__)

PRESET = "quickstart.yaml"
#: Written into every folder quickstart creates: only such a folder is ever deleted (--fresh).
MARKER = ".mask_grounding_dino_quickstart"
SUMMARY = "quickstart_summary.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="output folder (default: runs/quickstart)")
    parser.add_argument("--num-images", type=int, default=None, help="training images to generate")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="dataset and training seed")
    parser.add_argument("--selectivity-images", type=int, default=60,
                        help="held-out images used for the one-category-per-prompt check")
    parser.add_argument("--fresh", action="store_true",
                        help="delete <out> first, if quickstart created it (else training resumes)")
    parser.add_argument("--image-size", type=int, default=None, help="side of the generated images in px")
    parser.add_argument("--num-val", type=int, default=None, help="held-out images to generate")
    parser.add_argument("--colors", default=None, help="comma-separated colour words of the dataset")
    parser.add_argument("--shapes", default=None, help="comma-separated shape words of the dataset")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="spec overrides applied on top of the preset, e.g. train.num_epochs=4")


def preset_spec() -> dict:
    text = resources.files("mask_grounding_dino.presets").joinpath(PRESET).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _synth_config(args: argparse.Namespace, preset: dict):
    from ..data.synth import SynthConfig

    size = int(args.image_size or preset.get("image_size", 256))
    extra = {}
    if args.colors:
        extra["colors"] = tuple(c.strip() for c in args.colors.split(",") if c.strip())
    if args.shapes:
        extra["shapes"] = tuple(c.strip() for c in args.shapes.split(",") if c.strip())
    return SynthConfig(num_train=int(args.num_images or preset.get("num_images", 1000)),
                       num_val=int(args.num_val or preset.get("num_val", 200)), num_vg=0, seed=args.seed,
                       width=size, height=size, **extra)


def _generate_data(out: str, config) -> str:
    from ..data.synth import generate_synthetic_dataset

    data = os.path.join(out, "data")
    fingerprint = os.path.join(data, "quickstart_config.json")
    wanted = repr(config)
    if os.path.exists(fingerprint):
        with open(fingerprint, encoding="utf-8") as handle:
            if json.load(handle).get("config") == wanted:
                log.info(f"[1/5] dataset: reusing {data}")
                return data
    start = time.time()
    generate_synthetic_dataset(data, config)
    atomic_write_json(fingerprint, {"config": wanted})
    log.info(f"[1/5] dataset: {config.num_train} training + {config.num_val} held-out images in "
             f"{time.time() - start:.0f} s -> {data}")
    return data


def _prepare_out(out: str, fresh: bool) -> None:
    """Create ``out`` with the marker; reuse (or with ``fresh`` delete) only a folder quickstart made.

    A folder written by an earlier version (``data/quickstart_config.json``, no marker) is reused
    but never deleted.
    """
    marker = os.path.join(out, MARKER)
    if os.path.isdir(out) and os.listdir(out):
        ours = os.path.isfile(marker)
        earlier = os.path.isfile(os.path.join(out, "data", "quickstart_config.json"))
        if fresh and not ours:
            raise UserError(f"--out {out}: --fresh deletes only a folder quickstart created (it holds {MARKER}); "
                            "this one does not: give another --out, or delete it yourself")
        if not (ours or earlier):
            raise UserError(f"--out {out}: the folder is not empty and was not created by quickstart (no {MARKER} "
                            "in it); give a new or empty folder")
        if fresh:
            shutil.rmtree(out)
    elif os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out}: is a file, not a folder")
    os.makedirs(out, exist_ok=True)
    if not os.listdir(out):
        atomic_write_json(marker, {"created_by": "mask_grounding_dino quickstart"})


def _spec(out: str, data: str, epochs: int | None, seed: int, extra: list[str]) -> tuple[object, str]:
    raw = preset_spec()
    raw.pop("quickstart", None)
    train_dir, val_dir = os.path.join(data, "train"), os.path.join(data, "val")
    labels = [line.strip() for line in open(os.path.join(val_dir, "label_map.txt"), encoding="utf-8") if line.strip()]
    infer_dir = os.path.join(out, "inference_images")
    overrides = {
        "results_dir": out,  # every action writes to <out>/<action>; no action folder is pinned
        "train.seed": seed,
        "dataset.train_data_sources": [{"image_dir": os.path.join(train_dir, "images.tar.gz"),
                                        "json_file": os.path.join(train_dir, "annotations_odvg.jsonl"),
                                        "label_map": os.path.join(train_dir, "annotations_odvg_labelmap.json")}],
        "dataset.val_data_sources": {"image_dir": os.path.join(val_dir, "images.tar.gz"),
                                     "json_file": os.path.join(val_dir, "annotations.json"), "data_type": "OD"},
        "dataset.test_data_sources": {"image_dir": os.path.join(val_dir, "images.tar.gz"),
                                      "json_file": os.path.join(val_dir, "annotations.json"), "data_type": "OD"},
        "dataset.infer_data_sources": {"image_dir": [infer_dir], "captions": labels, "data_type": "OD"},
    }
    if epochs is not None:
        overrides["train.num_epochs"] = int(epochs)
    cfg = load_spec(base=raw, overrides=overrides)
    if extra:
        cfg = load_spec(base=spec_to_dict(cfg), overrides=extra)
    path = os.path.join(out, "spec.yaml")
    save_spec(cfg, path)
    return cfg, path


def _inference_images(out: str, data: str, count: int = 12) -> list[str]:
    from ..data.sources import open_image_source

    folder = os.path.join(out, "inference_images")
    os.makedirs(folder, exist_ok=True)
    source = open_image_source(os.path.join(data, "val", "images.tar.gz"))
    names = sorted(source.list_images())[:count]
    for name in names:
        target = os.path.join(folder, os.path.basename(name))
        if not os.path.exists(target):
            source.read(name).save(target)
    return names


def _selectivity(cfg, checkpoint: str, data: str, limit: int) -> list:
    from ..api import Predictor
    from ..data.coco import read_coco
    from ..data.sources import open_image_source
    from ..metrics.selectivity import CategorySelectivity, score_prompt
    import numpy as np

    coco = read_coco(os.path.join(data, "val", "annotations.json"))
    source = open_image_source(os.path.join(data, "val", "images.tar.gz"))
    predictor = Predictor.from_checkpoint(checkpoint, spec=cfg)
    by_image = coco.annotations_by_image()
    images = coco.images[:limit]
    arrays = [source.read_array(img.file_name) for img in images]
    results = []
    for category in coco.categories.values():
        result = CategorySelectivity(category)
        detections = predictor.predict(arrays, [category])
        for img, det in zip(images, detections):
            anns = by_image.get(img.id, [])
            boxes = np.array([[a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]] for a in anns],
                             dtype=np.float32).reshape(-1, 4)
            score_prompt(det, boxes, [coco.categories[a.category_id] for a in anns], category, result=result)
        results.append(result)
    return results


def _summary(out: str, outcome, checkpoint: str, metrics: dict, selectivity: list, wall_s: float) -> dict:
    """The summary to write. A rerun that trained nothing keeps the figures of the run that trained
    (its training time, metrics and selectivity) and records itself under ``last_rerun``."""
    current = {"wall_time_s": round(wall_s, 1), "train_time_s": round(outcome.seconds, 1),
               "trained_steps": outcome.global_step - outcome.start_step, "resumed_from": outcome.resumed_from,
               "checkpoint": checkpoint, "metrics": metrics, "selectivity": [r.to_dict() for r in selectivity]}
    if outcome.trained:
        return current
    previous = _read_json(os.path.join(out, SUMMARY))
    if previous and previous.get("checkpoint") == checkpoint and previous.get("train_time_s") is not None:
        previous["last_rerun"] = {"wall_time_s": current["wall_time_s"], "trained_steps": 0,
                                  "metrics": metrics}
        return previous
    current.update(train_time_s=None, note="trained by an earlier run; this run trained nothing")
    return current


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None


def run_quickstart(args: argparse.Namespace) -> int:
    from . import evaluate, inference, train
    from ..engine.checkpoints import LATEST_NAME
    from ..metrics.selectivity import format_table

    t0 = time.time()
    out = os.path.abspath(args.out)
    _prepare_out(out, args.fresh)
    preset = preset_spec().get("quickstart", {})
    data = _generate_data(out, _synth_config(args, preset))
    cfg, spec_path = _spec(out, data, args.epochs, args.seed, list(args.overrides or []))
    _inference_images(out, data)

    log.info(f"[2/5] training the CPU preset ({cfg.model.backbone}, {cfg.model.text_encoder_type} text encoder, "
             f"{cfg.train.num_epochs} epochs); spec: {spec_path}")
    outcome = train.fit(cfg)
    train_dir = outcome.results_dir
    # The link, not the file: it stays valid while retention replaces periodic checkpoints.
    latest = os.path.join(train_dir, LATEST_NAME)
    checkpoint = os.path.realpath(latest)
    cfg.evaluate.checkpoint = latest
    cfg.inference.checkpoint = latest
    save_spec(cfg, spec_path)

    log.info(f"[3/5] evaluating on {cfg.dataset.test_data_sources.json_file}")
    evaluate.run(cfg, progress_bar=False)
    with open(os.path.join(action_folder(cfg, "evaluate"), "latest_results.json"), encoding="utf-8") as handle:
        metrics = json.load(handle)

    log.info("[4/5] inference on held-out images")
    inference.run(cfg, progress_bar=False)

    log.info(f"[5/5] prompt selectivity: each category asked for alone on {args.selectivity_images} held-out images")
    selectivity = _selectivity(cfg, checkpoint, data, args.selectivity_images)
    log.info(format_table(selectivity))
    summary = _summary(out, outcome, checkpoint, metrics, selectivity, time.time() - t0)
    atomic_write_json(os.path.join(out, SUMMARY), summary)

    key = {k: v for k, v in (metrics.get("key_metrics", metrics) or {}).items() if "mAP@50" == k.split("_")[-1]}
    wall = time.time() - t0
    if outcome.trained:
        timing = f"{wall / 60:.1f} min (training {outcome.seconds / 60:.1f} min)"
    else:
        earlier = summary.get("train_time_s")
        timing = (f"{wall / 60:.1f} min (no training: already trained"
                  + (f", in {earlier / 60:.1f} min" if earlier else "") + ")")
    inference_dir = action_folder(cfg, "inference")
    rows = [("total time", timing), ("spec (rerun any step)", spec_path), ("checkpoint", checkpoint),
            ("training logs and plots", train_dir),
            ("evaluation report", action_folder(cfg, "evaluate")),
            ("annotated pictures", os.path.join(inference_dir, "images_annotated")),
            ("label files", os.path.join(inference_dir, "labels")),
            ("summary", os.path.join(out, SUMMARY))]
    rows += [(name, f"{value:.3f}") for name, value in key.items()]
    print_table("Quickstart finished", rows)
    return 0
