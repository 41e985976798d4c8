"""A short version of the README's main job: it learns (loss goes down, held-out mAP rises
above the untrained model's, measured in the same test) and writes everything it promises."""

import json
import os

import pytest
import torch

from mask_grounding_dino.cli import main
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.data import eval_loader
from mask_grounding_dino.engine.history import read_jsonl
from mask_grounding_dino.engine.module import GroundingModule

#: A small model and small images so the run takes about a minute on 2 CPU cores.
SHORT = ["--num-images", "64", "--num-val", "24", "--image-size", "128", "--colors", "red,blue",
         "--shapes", "circle,square", "--selectivity-images", "6", "--epochs", "10",
         "model.hidden_dim=64", "model.dim_feedforward=256", "model.nheads=4", "model.enc_layers=1",
         "model.dec_layers=2", "model.num_queries=20", "model.dn_number=8", "dataset.batch_size=4",
         "dataset.workers=0", "dataset.augmentation.scales=[112,128]",
         "dataset.augmentation.train_random_resize=[96,112]", "dataset.augmentation.train_random_crop_min=80",
         "dataset.augmentation.train_random_crop_max=112", "dataset.augmentation.random_resize_max_size=128",
         "dataset.augmentation.test_random_resize=128", "train.optim.lr=0.001", "train.optim.lr_backbone=0.001",
         "train.optim.warmup_steps=10", "train.optim.lr_steps=[9]",
         "train.validation_interval=100", "train.checkpoint_interval=100"]


def _untrained_map(spec_path: str) -> float:
    cfg = load_spec(spec_path)
    torch.manual_seed(cfg.train.seed)
    module = GroundingModule(spec_to_dict(cfg)).eval()
    loader, info = eval_loader(cfg, "test", module.text_processor)
    module.eval_data = info
    runner = module._eval_runner()
    with torch.no_grad():
        for batch in loader:
            runner.update(module(batch), batch)
    keys, _ = runner.compute("test")
    return float(keys["[bbox] test_mAP@50"])


@pytest.mark.slow
def test_short_quickstart_learns_and_writes_its_outputs(tmp_path):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), *SHORT]) == 0

    summary = json.loads((out / "quickstart_summary.json").read_text())
    trained = summary["metrics"]["[bbox] test_mAP@50"]
    untrained = _untrained_map(str(out / "spec.yaml"))
    losses = [row["train_loss"] for row in read_jsonl(str(out / "train" / "history.jsonl")) if "train_loss" in row]
    assert len(losses) >= 4
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.8 * first, losses                         # the loss goes down
    # Held-out mAP@50 well above the untrained model's (which is ~0 on this data).
    assert trained > untrained + 0.1, (trained, untrained)

    for path in ("spec.yaml", "train/plots/loss.png", "train/status.json", "evaluate/latest_results.json",
                 "inference/results.json", "inference/labels"):
        assert (out / path).exists(), path
    assert len(os.listdir(out / "inference" / "images_annotated")) == 12
    assert {r["category"] for r in summary["selectivity"]} == {"red circle", "red square", "blue circle",
                                                               "blue square"}
