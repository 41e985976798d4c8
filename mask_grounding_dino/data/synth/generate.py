"""Write the built-in synthetic dataset in TAO's layout (train / val / vg splits).

    DIR/train/  images.tar.gz  annotations_odvg.jsonl  annotations_odvg_labelmap.json  annotations.json
    DIR/val/    the same + label_map.txt (coco_raw) + inference.jsonl
    DIR/vg/     images.tar.gz  annotations_odvg.jsonl (grounding records with ``expression``)
                annotations.json (COCO + referring_expression/sent_id)
                annotations_refcoco.jsonl (TAO-Deploy RefCOCO-style)  inference.jsonl
    DIR/dataset.json  DIR/README.md

Every image is drawn from its own generator seeded by ``(seed, split, index)``,
so a split does not depend on the size of another and the same seed gives
byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict

import numpy as np

from ...errors import UserError
from .categories import Category, build_categories
from .config import SplitSummary, SynthConfig, SynthSummary
from .expressions import choose_expressions
from .readme import render_readme
from .scene import Scene, encode_image, render_scene
from ..masks import encode_rle as rle_encode
from .writer import TarGzWriter, write_json, write_jsonl, write_text

FORMAT_VERSION = 1
_SPLIT_CODES = {"train": 1, "val": 2, "vg": 3}


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other image and split."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)]))


def _file_name(cfg: SynthConfig, split: str, index: int) -> str:
    return f"{split}_{index:06d}.{cfg.image_format}"


def _vg_scene_categories(categories: list[Category], cfg: SynthConfig,
                         rng: np.random.Generator) -> list[Category]:
    """VG scenes repeat 1-2 categories so "largest"/"on the left" have something to pick from."""
    if rng.uniform() < cfg.scene.empty_fraction:
        return []
    focus = rng.choice(len(categories), size=min(len(categories), int(rng.integers(1, 3))), replace=False)
    chosen = [categories[int(f)] for f in focus for _ in range(int(rng.integers(2, 4)))]
    chosen += [categories[int(i)] for i in rng.integers(0, len(categories), size=int(rng.integers(0, 4)))]
    order = rng.permutation(len(chosen))
    return [chosen[int(i)] for i in order][: max(1, cfg.scene.max_objects)]


def _coco_categories(categories: list[Category]) -> list[dict]:
    return [{"id": c.id, "name": c.name, "supercategory": c.shape} for c in categories]


def _label_map(categories: list[Category]) -> dict[str, str]:
    return {str(c.id): c.name for c in categories}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _render_split(cfg: SynthConfig, categories: list[Category], split: str, count: int, folder: str):
    """Yield ``(index, file_name, image_id, scene, rng)`` while streaming images into the tar."""
    os.makedirs(folder, exist_ok=True)
    also = os.path.join(folder, "images") if cfg.extract_images else None
    with TarGzWriter(os.path.join(folder, "images.tar.gz"), also_folder=also) as tar:
        for index in range(count):
            rng = image_rng(cfg.seed, split, index)
            chosen = _vg_scene_categories(categories, cfg, rng) if split == "vg" else None
            scene = render_scene(categories, cfg.height, cfg.width, cfg.scene, rng, chosen=chosen)
            name = _file_name(cfg, split, index)
            tar.add(name, encode_image(scene.image, cfg.image_format, cfg.jpeg_quality))
            yield index, name, index + 1, scene, rng


def _write_detection_split(cfg: SynthConfig, categories: list[Category], split: str, count: int,
                           folder: str) -> SplitSummary:
    summary = SplitSummary()
    odvg, images, annotations, inference = [], [], [], []
    ann_id = 1  # COCO annotation ids start at 1 (pycocotools treats id 0 as "unmatched")
    for index, name, image_id, scene, rng in _render_split(cfg, categories, split, count, folder):
        instances = []
        images.append({"id": image_id, "file_name": name, "height": scene.height, "width": scene.width})
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.bbox_xyxy
            rle = rle_encode(obj.mask)
            instances.append({"bbox": [x1, y1, x2, y2], "label": obj.category.id,
                              "category": obj.category.name, "mask": rle})
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": obj.category.id,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": obj.area,
                                "segmentation": rle, "iscrowd": 0})
            ann_id += 1
        odvg.append({"file_name": name, "height": scene.height, "width": scene.width,
                     "image_id": image_id, "detection": {"instances": instances}})
        summary.images += 1
        summary.instances += len(instances)
        summary.empty_images += int(not instances)
        inference.append({"image_path": name, "expression": _inference_prompt(scene, categories, rng)})
    write_jsonl(os.path.join(folder, "annotations_odvg.jsonl"), odvg)
    write_json(os.path.join(folder, "annotations_odvg_labelmap.json"), _label_map(categories), indent=2)
    write_json(os.path.join(folder, "annotations.json"),
               {"info": {"description": f"mask_grounding_dino synthetic shapes ({split})",
                         "version": str(FORMAT_VERSION)},
                "images": images, "annotations": annotations, "categories": _coco_categories(categories)})
    if split == "val":
        write_text(os.path.join(folder, "label_map.txt"), "".join(f"{c.name}\n" for c in categories))
        write_jsonl(os.path.join(folder, "inference.jsonl"), inference)
    return summary


def _inference_prompt(scene: Scene, categories: list[Category], rng: np.random.Generator) -> str:
    """A prompt for inference.jsonl: usually a category in the image, sometimes an absent one."""
    present = sorted({o.category.id for o in scene.objects})
    if present and rng.uniform() < 0.8:
        return categories[present[int(rng.integers(0, len(present)))]].name
    return categories[int(rng.integers(0, len(categories)))].name


def _write_vg_split(cfg: SynthConfig, categories: list[Category], count: int, folder: str) -> SplitSummary:
    summary = SplitSummary()
    odvg, images, annotations, refcoco, inference = [], [], [], [], []
    ann_id = sent_id = 1
    for index, name, image_id, scene, rng in _render_split(cfg, categories, "vg", count, folder):
        images.append({"id": image_id, "file_name": name, "height": scene.height, "width": scene.width})
        rles = [rle_encode(o.mask) for o in scene.objects]
        summary.images += 1
        summary.instances += len(scene.objects)
        summary.empty_images += int(not scene.objects)
        exprs = choose_expressions(scene, categories, cfg.expressions_per_image,
                                   cfg.empty_expression_prob, rng)
        for expr in exprs:
            text = expr.text
            regions, coco_targets = [], []
            for t in expr.targets:
                obj = scene.objects[t]
                x1, y1, x2, y2 = obj.bbox_xyxy
                # The region phrase is the whole expression (gRefCOCO style): class 0.
                regions.append({"bbox": [x1, y1, x2, y2], "phrase": text, "mask": rles[t],
                                "tokens_positive": [[0, len(text)]]})
                coco_targets.append({"bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": obj.category.id,
                                     "segmentation": rles[t], "area": obj.area, "empty": False})
            if expr.empty:
                coco_targets.append({"bbox": [0.0, 0.0, 0.0, 0.0], "category_id": expr.category,
                                     "segmentation": [], "area": 0, "empty": True})
            odvg.append({"file_name": name, "height": scene.height, "width": scene.width,
                         "image_id": image_id,
                         "grounding": {"caption": text, "expression": text, "regions": regions,
                                       "empty": expr.empty, "expression_id": sent_id, "sent_id": sent_id}})
            for tgt in coco_targets:
                annotations.append({"id": ann_id, "image_id": image_id, **tgt, "iscrowd": 0,
                                    "referring_expression": text, "sent_id": sent_id, "ref_id": sent_id})
                ann_id += 1
            refcoco.append({"image_id": image_id, "file_name": name, "height": scene.height,
                            "width": scene.width,
                            "annotations": [{k: v for k, v in tgt.items() if k != "area"} for tgt in coco_targets],
                            "sentence": {"raw": text, "ref_id": sent_id, "sent_id": sent_id}})
            inference.append({"image_path": name, "expression": text})
            summary.expressions += 1
            summary.empty_expressions += int(expr.empty)
            sent_id += 1
    write_jsonl(os.path.join(folder, "annotations_odvg.jsonl"), odvg)
    write_json(os.path.join(folder, "annotations.json"),
               {"info": {"description": "mask_grounding_dino synthetic shapes (vg, referring)",
                         "version": str(FORMAT_VERSION)},
                "images": images, "annotations": annotations, "categories": _coco_categories(categories)})
    write_jsonl(os.path.join(folder, "annotations_refcoco.jsonl"), refcoco)
    write_jsonl(os.path.join(folder, "inference.jsonl"), inference)
    return summary


def generate_synthetic_dataset(out_dir: str, config: SynthConfig | None = None) -> SynthSummary:
    """Write the dataset under ``out_dir`` and return what was written."""
    cfg = config or SynthConfig()
    cfg.validate()
    categories = build_categories(cfg.colors, cfg.shapes)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"dataset synth: --out {out_dir} exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
    splits: dict[str, SplitSummary] = {}
    for split, count in (("train", cfg.num_train), ("val", cfg.num_val)):
        splits[split] = _write_detection_split(cfg, categories, split, count, os.path.join(out_dir, split))
    if cfg.num_vg > 0:
        splits["vg"] = _write_vg_split(cfg, categories, cfg.num_vg, os.path.join(out_dir, "vg"))
    for split, summary in splits.items():
        folder = os.path.join(out_dir, split)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                summary.files[f"{split}/{name}"] = _sha256(path)
    summary = SynthSummary(out_dir, [c.name for c in categories], splits)
    _write_manifest(out_dir, cfg, categories, summary)
    return summary


def _write_manifest(out_dir: str, cfg: SynthConfig, categories: list[Category], summary: SynthSummary) -> None:
    params = asdict(cfg)
    params["colors"], params["shapes"] = list(cfg.colors), list(cfg.shapes)
    manifest = {
        "name": "mask_grounding_dino synthetic shapes",
        "format_version": FORMAT_VERSION,
        "generator": "mask_grounding_dino.data.synth",
        "parameters": params,
        "categories": [{"id": c.id, "name": c.name, "color": c.color, "shape": c.shape,
                        "rgb": list(c.rgb)} for c in categories],
        "splits": {k: asdict(v) for k, v in summary.splits.items()},
    }
    write_json(os.path.join(out_dir, "dataset.json"), manifest, indent=2)
    write_text(os.path.join(out_dir, "README.md"), render_readme(cfg, categories, summary))
