"""``mask_grounding_dino evaluate -e spec.yaml``: score a model on ``dataset.test_data_sources``.

spec -> model (``evaluate.checkpoint``: any checkpoint, or an ``.onnx`` file) -> test loader
(``evaluate.input_width/height``, ``evaluate.batch_size``) -> detector (TAO's post-processing
with ``evaluate.*`` thresholds; long class lists in chunks) -> metrics -> files.

* OD (COCO json): bbox and segm, the 12 COCO numbers each (pycocotools), TAO's keys
  (``[bbox] test_mAP@50``, ``[segm] test_mAP@50-95`` ...) and a per-class table; the
  predictions as a COCO results file ``<name>_results.json`` (boxes + RLE masks).
* VG (referring data): mIoU, overall_IoU (cIoU), mAP50, mAP, T_acc, N_acc, Pr@0.5/0.7/0.9,
  with the thresholds used; the predictions per expression in ``<name>_predictions.json``.

Also in the results folder (``evaluate.results_dir``, else ``<results_dir>/evaluate``):
``detailed_results_<name>.json``, ``key_metrics_<name>.csv``, ``evaluation_summary_<name>.txt``,
``latest_results.json`` and ``evaluate_spec.yaml`` (the resolved spec). ``<name>`` is the
stem of the test json.

``evaluate.num_gpus`` / ``num_nodes`` > 1 (PyTorch models): the test set is split over the
processes (``deploy/parallel.py``), the metrics are computed once over every process's
predictions, and rank 0 writes the files; the numbers equal a one-process run's.
"""

from __future__ import annotations

import os
import time

from ..config import require
from ..deploy.detector import Thresholds
from ..deploy.parallel import run_detector
from ..metrics.scoring import DatasetScoring
from ..metrics.report import safe_name, write_evaluation_report
from ..utils.log import process_rank
from .common import open_model_run, print_table

#: ``mask_grounding_dino evaluate --help`` (read from this file by the CLI without importing it).
HELP = {
    "summary": "score a model on test data (COCO bbox + segm, or referring metrics)",
    "description": "Score a model on dataset.test_data_sources: COCO bbox + segm AP/AR (OD data) or referring "
                   "metrics (VG data), with a per-class table and the predictions as a COCO results file.",
    "keys": [
        ("evaluate.checkpoint", "the model: a .pth checkpoint (ours, TAO's, the original release), a Hugging "
                                "Face folder or hub id, or an .onnx file"),
        ("dataset.test_data_sources.image_dir", "the images: a folder, an images.tar.gz or an s3:// URL"),
        ("dataset.test_data_sources.json_file", "the annotations: COCO json (OD) or ODVG jsonl (VG)"),
        ("dataset.test_data_sources.data_type", "OD (default: COCO metrics) or VG (referring metrics)"),
        ("evaluate.num_gpus", "devices per node (evaluate.num_nodes: nodes); more than one splits the test set over "
                            "processes (without a GPU: that many CPU processes); ONNX files run in one"),
        ("evaluate.results_dir", "where the report goes (default: <results_dir>/evaluate)"),
        ("evaluate.conf_threshold", "score a detection needs to be kept (also nms_threshold, text_threshold)"),
    ],
    "examples": [
        "mask_grounding_dino evaluate -e spec.yaml evaluate.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth",
        "mask_grounding_dino evaluate -e spec.yaml evaluate.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth "
        "dataset.test_data_sources.image_dir=data/val/images.tar.gz "
        "dataset.test_data_sources.json_file=data/val/annotations.json dataset.test_data_sources.data_type=OD "
        "evaluate.results_dir=runs/exp1/evaluate",
        "mask_grounding_dino evaluate -e spec.yaml evaluate.checkpoint=runs/exp1/export/model.onnx",
    ],
}


def _header(path: str, backend, source, data_type: str, thresholds: Thresholds, seconds: float, images: int) -> str:
    values = ", ".join(f"{k} {v:g}" for k, v in thresholds.as_dict().items())
    return (f"model: {path} ({backend.describe()})\n"
            f"data: {source.json_file} ({data_type}, {images} samples, images from {source.image_dir})\n"
            f"post-processing: {values}\n"
            f"time: {seconds:.1f} s\n")


def run(cfg, *, progress_bar: bool = True) -> int:
    source = cfg.dataset.test_data_sources
    require(cfg, "dataset.test_data_sources.json_file", "dataset.test_data_sources.image_dir", action="evaluate")
    data_type = (source.data_type or "OD").upper()
    run_ = open_model_run(cfg, "evaluate", "test", cfg.evaluate)
    path, backend, results_dir = run_.path, run_.backend, run_.results_dir
    dataset, thresholds = run_.dataset, run_.thresholds
    # The scorer validation uses during training: same model, same data -> same numbers.
    scoring = DatasetScoring(data_type, coco_gt=source.json_file,
                             categories=dict(dataset.categories) if data_type == "OD" else None,
                             with_segm=bool(cfg.dataset.has_mask), score_threshold=thresholds.conf_threshold,
                             keep_predictions=True)

    started = time.time()
    run_detector(run_, data_type, lambda batch, detections: scoring.add(batch.targets, detections),
                 desc="evaluate", progress_bar=progress_bar)
    key_metrics, metrics = scoring.compute("test")  # every process's predictions, scored once
    seconds = time.time() - started

    name = safe_name(os.path.splitext(os.path.basename(source.json_file))[0])
    predictions = scoring.write_predictions(results_dir, name)
    if process_rank() != 0:  # the other processes of a multi-process run: rank 0 reports
        return 0
    header = _header(path, backend, source, data_type, thresholds, seconds, len(dataset))
    details = {"data_type": data_type, "model": path, "backend": backend.describe(), "test_data": source.json_file,
               "image_dir": source.image_dir, "thresholds": thresholds.as_dict(), "seconds": seconds,
               "predictions": predictions, "metrics": metrics.to_dict()}
    report = write_evaluation_report(results_dir, name, key_metrics, details, header + "\n" + metrics.summary())

    rows = [(key, f"{value:.4f}") for key, value in key_metrics.items()
            if data_type == "VG" or key.endswith(("_mAP@50-95", "_mAP@50", "_mAP@75", "_AR@100"))]
    rows += [("thresholds", ", ".join(f"{k}={v:g}" for k, v in thresholds.as_dict().items())),
             ("predictions", predictions), ("report", str(report.summary)), ("time", f"{seconds:.1f} s")]
    print_table(f"Evaluation of {os.path.basename(path)} on {source.json_file} ({data_type})", rows)
    return 0
