"""The evaluate action: OD report files with TAO's 24 COCO keys, AP = 1 for ground-truth predictions,
VG referring metrics, and one-line errors for bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask_grounding_dino import cli
from mask_grounding_dino.actions import evaluate
from mask_grounding_dino.deploy.detector import Detector
from mask_grounding_dino.metrics.coco import STAT_NAMES
from mask_grounding_dino.model.chunking import plan_chunks
from mask_grounding_dino.model.results import Detections
from mask_grounding_dino.text import TextProcessor


def _od_spec(make_spec, synth_data, checkpoint, **extra):
    return make_spec({"evaluate.checkpoint": str(checkpoint),
                      "dataset.test_data_sources": {"image_dir": str(synth_data / "val" / "images.tar.gz"),
                                                    "json_file": str(synth_data / "val" / "annotations.json"),
                                                    "data_type": "OD"}, **extra})


def _ground_truth_detections(gt: COCO):
    """A stand-in for ``Detector.detect_batch`` that returns each image's ground truth (score 1)."""
    cat_ids = sorted(gt.getCatIds())

    def detect_batch(self, batch, mode):
        out = []
        for target in batch.targets:
            anns = gt.loadAnns(gt.getAnnIds(imgIds=[int(target.image_id)], iscrowd=False))
            h, w = target.orig_size
            boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                                  for a in anns], dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor([cat_ids.index(a["category_id"]) for a in anns], dtype=torch.long)
            masks = torch.from_numpy(np.stack([gt.annToMask(a).astype(bool) for a in anns])
                                     if anns else np.zeros((0, h, w), bool))
            out.append(Detections(boxes=boxes, scores=torch.ones(len(anns)), labels=labels,
                                  phrases=[gt.cats[a["category_id"]]["name"] for a in anns], masks=masks,
                                  image_size=(h, w)))
        return out

    return detect_batch


def test_od_ground_truth_as_predictions_scores_ap_1(make_spec, synth_data, tiny_checkpoint, monkeypatch, capsys):
    gt_path = synth_data / "val" / "annotations.json"
    gt = COCO(str(gt_path))
    monkeypatch.setattr(Detector, "detect_batch", _ground_truth_detections(gt))
    cfg = _od_spec(make_spec, synth_data, tiny_checkpoint)
    assert evaluate.run(cfg, progress_bar=False) == 0
    out_dir = cfg.evaluate.results_dir or f"{cfg.results_dir}/evaluate"

    with open(f"{out_dir}/latest_results.json") as f:
        metrics = json.load(f)
    # TAO's names: 12 COCO numbers for each of bbox and segm, "test" prefix.
    expected_keys = {f"[{iou}] test_{name}" for iou in ("bbox", "segm") for name in STAT_NAMES}
    assert set(metrics) == expected_keys
    for iou in ("bbox", "segm"):
        # Exact ground truth: every IoU is 1, so AP is exactly 1 at every threshold (pycocotools).
        assert metrics[f"[{iou}] test_mAP@50-95"] == 1.0
        assert metrics[f"[{iou}] test_mAP@50"] == 1.0
        assert metrics[f"[{iou}] test_AR@100"] == 1.0
    with open(f"{out_dir}/key_metrics_annotations.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["metric", "value"] and len(rows) == 25
    summary = open(f"{out_dir}/evaluation_summary_annotations.txt").read()
    assert "conf_threshold 0" in summary and "category" in summary          # thresholds + per-class table
    detailed = json.load(open(f"{out_dir}/detailed_results_annotations.json"))
    assert {r["name"] for r in detailed["metrics"]["per_class"]["bbox"]} == {c["name"] for c in gt.cats.values()}
    assert "evaluate:" in open(f"{out_dir}/evaluate_spec.yaml").read()             # the resolved spec

    # The written predictions are a COCO results file: pycocotools reproduces AP = 1 from it.
    dt = gt.loadRes(f"{out_dir}/annotations_results.json")
    ev = COCOeval(gt, dt, "segm")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == 1.0
    assert "[bbox] test_mAP@50" in capsys.readouterr().out                   # the printed summary table


def test_od_with_the_model_writes_reports(make_spec, synth_data, tiny_checkpoint):
    cfg = _od_spec(make_spec, synth_data, tiny_checkpoint)
    assert evaluate.run(cfg, progress_bar=False) == 0
    out_dir = f"{cfg.results_dir}/evaluate"
    metrics = json.load(open(f"{out_dir}/latest_results.json"))
    assert len(metrics) == 24 and all(-1.0 <= v <= 1.0 for v in metrics.values())
    results = json.load(open(f"{out_dir}/annotations_results.json"))
    # conf_threshold 0 keeps detections; each has a box, a score and an RLE mask of its image's size.
    assert results and all(set(r) >= {"image_id", "category_id", "bbox", "score", "segmentation"} for r in results)
    assert {tuple(r["segmentation"]["size"]) for r in results} == {(64, 64)}


def test_vg_writes_referring_metrics_with_thresholds(make_spec, synth_data, tiny_checkpoint):
    cfg = make_spec({"evaluate.checkpoint": str(tiny_checkpoint), "evaluate.conf_threshold": 0.25,
                     "dataset.test_data_sources": {"image_dir": str(synth_data / "vg" / "images.tar.gz"),
                                                   "json_file": str(synth_data / "vg" / "annotations_odvg.jsonl"),
                                                   "data_type": "VG"}})
    assert evaluate.run(cfg, progress_bar=False) == 0
    out_dir = f"{cfg.results_dir}/evaluate"
    metrics = json.load(open(f"{out_dir}/latest_results.json"))
    assert set(metrics) == {f"test_{k}" for k in ("mIoU", "overall_IoU", "mAP50", "mAP", "T_acc", "N_acc",
                                                  "Pr@0.5", "Pr@0.7", "Pr@0.9")}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())                 # percentages, as TAO logs them
    summary = open(f"{out_dir}/evaluation_summary_annotations_odvg.txt").read()
    assert "conf_threshold 0.25" in summary and "score >= 0.25" in summary
    predictions = json.load(open(f"{out_dir}/annotations_odvg_predictions.json"))
    expressions = sum(1 for line in open(synth_data / "vg" / "annotations_odvg.jsonl") if line.strip())
    assert len(predictions) == expressions and all("caption" in p for p in predictions)


@pytest.mark.parametrize("override, message", [
    ("evaluate.checkpoint={missing}", "evaluate.checkpoint: checkpoint '{missing}' does not exist"),
    ("evaluate.trt_engine={engine}", "evaluate.trt_engine: '{engine}' is a TensorRT engine; running it needs "
                                     "TensorRT and a GPU"),
])
def test_bad_model_paths_are_one_line_errors(synth_data, tmp_path, capsys, override, message):
    paths = {"missing": tmp_path / "nope.pth", "engine": tmp_path / "model.engine"}
    args = ["evaluate", override.format(**paths), f"results_dir={tmp_path}",
            f"dataset.test_data_sources.json_file={synth_data / 'val' / 'annotations.json'}",
            f"dataset.test_data_sources.image_dir={synth_data / 'val' / 'images'}"]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: " + message.format(**paths))


def test_od_class_list_longer_than_the_text_encoder_runs_in_chunks(make_spec, synth_data, tiny_checkpoint, tmp_path):
    """80 extra categories make a ~340-token prompt: evaluation splits it and maps labels back."""
    data = json.load(open(synth_data / "val" / "annotations.json"))
    first = len(data["categories"])
    data["categories"] += [{"id": first + i, "name": f"extra object number {i}"} for i in range(80)]
    gt_path = tmp_path / "many_classes.json"
    gt_path.write_text(json.dumps(data))
    cfg = make_spec({"evaluate.checkpoint": str(tiny_checkpoint),
                     "dataset.test_data_sources": {"image_dir": str(synth_data / "val" / "images"),
                                                   "json_file": str(gt_path), "data_type": "OD"}})
    assert evaluate.run(cfg, progress_bar=False) == 0
    out_dir = f"{cfg.results_dir}/evaluate"
    assert len(json.load(open(f"{out_dir}/latest_results.json"))) == 24
    results = json.load(open(f"{out_dir}/many_classes_results.json"))
    ids = {r["category_id"] for r in results}
    assert ids <= {c["id"] for c in data["categories"]}
    chunks = plan_chunks([c["name"] for c in data["categories"]], TextProcessor("bert-base-uncased", 256))
    assert len(chunks) == 2
    assert max(ids) >= len(chunks[0])      # the second chunk's categories were predicted and mapped back


def _checkpoint_trained_with(tmp_path, name: str, spec: dict):
    """The tiny preset (8 region queries) saved with the training spec ``spec``, as training records it."""
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.presets import build_preset

    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    save_checkpoint(build_preset("tiny"), path, metadata={"spec": spec})
    return path


def test_a_checkpoint_whose_region_head_never_trained_gets_one_warning(make_spec, synth_data, tmp_path, caplog):
    """Its training spec (TAO's template does this) built the region head without the 'rela' loss and
    without a warm start: evaluate's IoI filter would drop detections by an untrained union mask."""
    import logging

    untrained = _checkpoint_trained_with(tmp_path, "untrained", {"model": {"num_region_queries": 8}})
    trained = _checkpoint_trained_with(tmp_path, "trained", {"model": {
        "num_region_queries": 8, "loss_types": ["labels", "boxes", "masks", "rela"]}})
    warm = _checkpoint_trained_with(tmp_path, "warm", {"model": {"num_region_queries": 8},
                                                       "train": {"pretrained_model_path": "tao_model.pth"}})
    seen = {}
    for label, checkpoint, extra in (("untrained", untrained, {}), ("filter off", untrained,
                                     {"evaluate.ioi_threshold": 0.0}), ("trained", trained, {}), ("warm", warm, {})):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mask_grounding_dino.deploy.loading"):
            assert evaluate.run(_od_spec(make_spec, synth_data, checkpoint, **extra), progress_bar=False) == 0
        seen[label] = [r.getMessage() for r in caplog.records if r.name == "mask_grounding_dino.deploy.loading"]
    assert len(seen["untrained"]) == 1, seen
    assert seen["untrained"][0].startswith("evaluate.checkpoint: this checkpoint was trained with a region head "
                                           "(model.num_region_queries 8) but without its loss"), seen
    assert "set evaluate.ioi_threshold=0" in seen["untrained"][0]
    assert seen["filter off"] == seen["trained"] == seen["warm"] == [], seen
