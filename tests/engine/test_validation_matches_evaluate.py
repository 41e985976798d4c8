"""Validation during training and ``evaluate`` score with one scorer: the same checkpoint on the
same data gives the same numbers, key for key (``[bbox] val_*`` == ``[bbox] test_*``).

A tiny model's scores against the real labels are all 0 after a few steps, which would make
the comparison empty. So the labels are the model's own top detections (boxes and masks, written
as a COCO json): both paths then score well above 0, and any difference in resizing, batching,
post-processing or scoring shows up as a different number.
"""

from __future__ import annotations

import json

import lightning.pytorch as pl
import torch

from mask_grounding_dino.actions import evaluate
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.checkpoints import find_resume_checkpoint
from mask_grounding_dino.engine.data import eval_loader
from mask_grounding_dino.engine.history import read_jsonl
from mask_grounding_dino.engine.module import GroundingModule

from engine_helpers import labels_from_predictions


def _evaluate(cfg, checkpoint, json_file, out_dir) -> dict:
    cfg.evaluate.checkpoint = checkpoint
    cfg.evaluate.results_dir = str(out_dir)
    source, val = cfg.dataset.test_data_sources, cfg.dataset.val_data_sources
    source.image_dir, source.json_file, source.data_type = val.image_dir, str(json_file), "OD"
    assert evaluate.run(cfg, progress_bar=False) == 0
    tested = json.loads((out_dir / "latest_results.json").read_text())
    return tested.get("key_metrics", tested)


def test_validation_and_evaluate_give_identical_metrics(reference_run, tmp_path):
    spec = load_spec(str(reference_run.parents[1] / "spec.yaml"))
    checkpoint = find_resume_checkpoint(str(reference_run))
    first = _evaluate(load_spec(str(reference_run.parents[1] / "spec.yaml")), checkpoint,
                      spec.dataset.val_data_sources.json_file, tmp_path / "first")
    labels = tmp_path / "labels.json"
    labels_from_predictions(spec.dataset.val_data_sources.json_file, tmp_path / "first" / "annotations_results.json",
                             labels)

    # Validation exactly as training runs it: the module's validation hooks under a Trainer.
    cfg = load_spec(str(reference_run.parents[1] / "spec.yaml"))
    cfg.dataset.val_data_sources.json_file = str(labels)
    cfg.train.results_dir = str(tmp_path / "validation")
    (tmp_path / "validation").mkdir()
    module = GroundingModule(spec_to_dict(cfg))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    loader, info = eval_loader(cfg, "val", module.text_processor)
    module.eval_data = info
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
               enable_model_summary=False).validate(module, loader, verbose=False)
    validated = read_jsonl(str(tmp_path / "validation" / "val_metrics.jsonl"))[-1]["metrics"]

    tested = _evaluate(load_spec(str(reference_run.parents[1] / "spec.yaml")), checkpoint, labels, tmp_path / "second")
    renamed = {k.replace(" val_", " test_"): v for k, v in validated.items()}
    assert len(renamed) >= 24 and set(renamed) <= set(tested), (sorted(renamed), sorted(tested))
    # Exact equality: one scorer, one post-processing, the same batches (no tolerance needed).
    assert {k: tested[k] for k in renamed} == renamed
    assert renamed["[bbox] test_mAP@50"] > 0.3 and renamed["[segm] test_mAP@50"] > 0.3, renamed
    assert first["[bbox] test_mAP@50"] < renamed["[bbox] test_mAP@50"]
