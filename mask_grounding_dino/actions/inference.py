"""``mask_grounding_dino inference -e spec.yaml``: predict on new images and write the results.

spec -> model (``inference.checkpoint``: any checkpoint, or an ``.onnx`` file) -> images and
prompts (``dataset.infer_data_sources``) -> detector (``inference.*`` thresholds, TAO's
defaults: conf 0.5, nms 0.2, text 0.3, ioi 0.5; long class lists in chunks) -> files.

* OD: ``captions`` (a class list, ``"a . b"`` or a label map path) prompts every image of
  ``image_dir`` (one or several folders, ``images.tar.gz`` archives or URLs).
* VG: ``json_file`` (inference.jsonl: ``image_path`` + ``expression`` per line); images the
  region head calls "no target" return nothing.

Outputs (``inference.results_dir``, else ``<results_dir>/inference``): ``images_annotated/``,
``labels/`` (TAO's KITTI lines, ``Empty`` when nothing passes), ``results.json`` (COCO
results with RLE masks) + ``results_index.json``, ``inference_spec.yaml``. See
``deploy/results_writer.py``. With several sources (or ``is_internal``) each source writes
into a sub-folder named after it.

``inference.num_gpus`` / ``num_nodes`` > 1 (PyTorch models): the images are split over the
processes (``deploy/parallel.py``); each writes the pictures and labels of its own images, and
rank 0 writes ``results.json`` for all of them, the files a one-process run writes.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter

from ..config import is_unset
from ..deploy.parallel import run_detector
from ..deploy.results_writer import InferenceWriter, normalise_color_map, safe_relative
from ..errors import SpecError
from ..utils.log import process_rank
from .common import open_model_run, print_table

#: ``mask_grounding_dino inference --help`` (read from this file by the CLI without importing it).
HELP = {
    "summary": "predict on new images from text prompts (pictures, labels, COCO results)",
    "description": "Predict on new images with text prompts: annotated pictures, TAO's label files and a COCO "
                   "results file (boxes + RLE masks).",
    "keys": [
        ("inference.checkpoint", "the model: a .pth checkpoint, a Hugging Face folder or hub id, or an .onnx file"),
        ("dataset.infer_data_sources.image_dir", "the images: a folder, an images.tar.gz, an s3:// URL, or a "
                                                 "list of them"),
        ("dataset.infer_data_sources.captions", "the class names (OD): [red circle, blue square], "
                                                "'red circle . blue square', 'red circle, blue square' or a "
                                                "label_map.txt path; quote values with spaces"),
        ("dataset.infer_data_sources.json_file", "VG instead: an inference.jsonl (image_path + expression per line) "
                                                 "with dataset.infer_data_sources.data_type=VG"),
        ("inference.conf_threshold", "score a detection needs to be drawn and written (TAO: 0.5)"),
        ("inference.num_gpus", "devices per node (inference.num_nodes: nodes); more than one splits the images over "
                            "processes (without a GPU: that many CPU processes); ONNX files run in one"),
        ("inference.results_dir", "where the outputs go (default: <results_dir>/inference)"),
        ("inference.color_map", "class name -> colour of its box, mask and tag, e.g. {red circle: red}"),
        ("inference.outline_width", "line width of boxes and mask outlines, in pixels of the picture"),
    ],
    "examples": [
        "mask_grounding_dino inference -e spec.yaml inference.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth "
        "dataset.infer_data_sources.image_dir=pictures \"dataset.infer_data_sources.captions=red circle . blue square\"",
        "mask_grounding_dino inference -e spec.yaml inference.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth "
        "dataset.infer_data_sources.image_dir=data/val/images.tar.gz "
        "dataset.infer_data_sources.captions=data/val/label_map.txt inference.conf_threshold=0.3",
        "mask_grounding_dino inference -e spec.yaml inference.checkpoint=IDEA-Research/grounding-dino-tiny "
        "dataset.infer_data_sources.image_dir=pictures \"dataset.infer_data_sources.captions=[person, forklift]\"",
    ],
}

_ARCHIVE = re.compile(r"\.(tar\.gz|tgz|tar)$", re.IGNORECASE)


def check_sources(cfg) -> str:
    """The data type, after checking that the prompts and images are named (before loading a model)."""
    src = cfg.dataset.infer_data_sources
    data_type = (src.data_type or "OD").upper()
    problems = []
    if not src.image_dirs:
        problems.append("dataset.infer_data_sources.image_dir: required for inference; give an image folder, an "
                        "images.tar.gz or a URL (or a list of them)")
    if data_type == "OD" and is_unset(src.captions):
        problems.append("dataset.infer_data_sources.captions: required for OD inference; give the class names "
                        "(a list, 'a . b . c', or a label_map.txt path)")
    if data_type == "VG" and is_unset(src.json_file) and is_unset(src.captions):
        problems.append("dataset.infer_data_sources.json_file: required for VG inference; give an inference.jsonl "
                        "with image_path and expression on each line")
    if problems:
        raise SpecError(problems)
    normalise_color_map(cfg.inference.color_map)
    return data_type


def _source_folders(image_dirs: list[str]) -> list[str]:
    """A readable, distinct sub-folder name per image source."""
    names = []
    for path in image_dirs:
        parts = [p for p in path.rstrip("/").replace("\\", "/").split("/") if p]
        base = _ARCHIVE.sub("", parts[-1]) if parts else "images"
        if base == "images" and len(parts) > 1:
            base = f"{parts[-2]}_images"
        name, k = safe_relative(base), 1
        while name in names:
            k += 1
            name = f"{safe_relative(base)}_{k}"
        names.append(name)
    return names


def output_names(dataset, image_dirs: list[str], nested: bool) -> list[str]:
    """Relative output name of every entry: its path in its source, in the source's sub-folder when
    ``nested``, with ``_<n>`` added when one image is prompted by several expressions (VG)."""
    entries = list(dataset.entries)
    repeats = Counter((e.source, e.path) for e in entries)
    seen: Counter = Counter()
    folders = _source_folders(image_dirs) if nested else None
    names = []
    for entry in entries:
        name = safe_relative(entry.path)
        key = (entry.source, entry.path)
        if repeats[key] > 1:
            stem, ext = os.path.splitext(name)
            name = f"{stem}_{seen[key]}{ext}"
            seen[key] += 1
        names.append(f"{folders[entry.source]}/{name}" if folders else name)
    return names


def run(cfg, *, progress_bar: bool = True) -> int:
    data_type = check_sources(cfg)
    section, src = cfg.inference, cfg.dataset.infer_data_sources
    run_ = open_model_run(cfg, "inference", "infer", section)
    path, backend, results_dir = run_.path, run_.backend, run_.results_dir
    dataset, thresholds = run_.dataset, run_.thresholds
    categories = list(dataset.od_caption.phrases) if data_type == "OD" else None
    writer = InferenceWriter(results_dir, categories=categories, color_map=section.color_map,
                             outline_width=section.outline_width)
    names = output_names(dataset, src.image_dirs, nested=len(dataset.sources) > 1 or bool(section.is_internal))

    def write(batch, detections) -> None:
        for target, det in zip(batch.targets, detections):
            index = int(target.image_id)  # the entry's position in the data set
            entry = dataset.entries[index]
            image = dataset.sources[entry.source].read(entry.path)
            writer.add(image, names[index], det, expression=entry.expression, image_id=index)

    started = time.time()
    run_detector(run_, data_type, write, desc="inference", progress_bar=progress_bar)
    paths = writer.close()  # every process's results, written once
    seconds = time.time() - started
    if process_rank() != 0:  # the other processes of a multi-process run: rank 0 reports
        return 0

    rows = [("model", f"{path} ({backend.kind})"), ("mode", data_type), ("images", str(len(dataset))),
            ("detections", str(len(writer.results))), ("images with nothing kept", str(writer.num_empty)),
            ("thresholds", ", ".join(f"{k}={v:g}" for k, v in thresholds.as_dict().items())),
            ("annotated images", str(paths["images_annotated"])), ("labels", str(paths["labels"])),
            ("results", str(paths["results"])), ("time", f"{seconds:.1f} s")]
    print_table("Inference finished", rows)
    return 0
