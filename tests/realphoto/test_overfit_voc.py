"""A short overfit on the real VOC photo through the training engine.

The engine's own pieces do the work: the spec -> :class:`GroundingModule` (model, TAO
criterion, optimiser groups), ``train_loader`` over the converted ODVG file (TAO's caption
with all 20 class names shuffled, masks decoded), ``eval_loader`` over the contiguous COCO
json and the Lightning trainer of the ``train`` action. Validation before training gives the
untrained score; validation after 150 steps the trained one, both through the validation
metrics path (post-processing -> COCO evaluation with pycocotools).

Size: narrow ResNet, the bundled MiniLM text encoder (frozen, as TAO's specs freeze ``bert``),
width 64, 2+2 layers, 50 queries, denoising queries, masks and region head on, images at 320
px short side, batch 1, lr 1e-3, one thread: 85-100 s on the shared 2-core machine.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
import pytest
import torch

from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.data import eval_loader, train_loader
from mask_grounding_dino.engine.module import GroundingModule
from mask_grounding_dino.engine.trainer import build_trainer

STEPS = 150
SIZE = 320


def overfit_spec(photo, results_dir: str, steps: int = STEPS) -> dict:
    """A training spec over one converted photo: no crop or flip, one size, one epoch per step."""
    return {
        "results_dir": results_dir, "wandb": {"enable": False},
        "model": {"backbone": "resnet_tiny", "text_encoder_type": "minilm", "hidden_dim": 64, "nheads": 4,
                  "dim_feedforward": 256, "enc_layers": 2, "dec_layers": 2, "num_queries": 50, "num_select": 50,
                  "num_region_queries": 8, "class_embed_bias": True, "log_scale": "auto", "dn_number": 3,
                  "has_mask": True, "dropout_ratio": 0.0},
        "dataset": {
            "train_data_sources": [{"image_dir": str(photo.image_dir), "json_file": str(photo.odvg),
                                    "label_map": str(photo.label_map)}],
            "val_data_sources": {"image_dir": str(photo.image_dir), "json_file": str(photo.contiguous_json),
                                 "data_type": "OD"},
            "batch_size": 1, "workers": 0, "has_mask": True,
            # Crops larger than the photo never happen, so every step sees the whole photo at SIZE.
            "augmentation": {"scales": [SIZE], "train_random_resize": [SIZE], "train_random_crop_min": 1000,
                             "train_random_crop_max": 1333, "random_resize_max_size": 1333,
                             "horizontal_flip_prob": 0.0, "test_random_resize": SIZE, "fixed_padding": False}},
        "train": {"num_epochs": steps, "validation_interval": steps, "freeze": ["bert"], "clip_grad_norm": 0.1,
                  "seed": 1, "activation_checkpoint": False,
                  "optim": {"lr": 1e-3, "lr_backbone": 1e-3, "lr_steps": [10 * steps], "weight_decay": 1e-4}},
    }


@pytest.fixture
def one_thread():
    """One thread: the machine is shared, and a fixed thread count fixes the summation order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _validate(module, loader, cfg, results_dir: str) -> tuple[dict[str, float], float]:
    """(TAO-named validation metrics, validation loss) of the module as it is."""
    os.makedirs(results_dir, exist_ok=True)
    trainer = build_trainer(cfg, results_dir, [], enable_progress_bar=False)
    trainer.validate(module, loader, verbose=False)
    return dict(module.last_val_metrics), float(trainer.callback_metrics["val_loss"])


@pytest.mark.slow
def test_short_overfit_on_the_voc_photo_raises_map(voc, tmp_path, one_thread):
    cfg = load_spec(base=overfit_spec(voc, str(tmp_path / "results")))
    pl.seed_everything(int(cfg.train.seed), verbose=False)     # as the train action: a fixed initialisation
    module = GroundingModule(spec_to_dict(cfg))
    train = train_loader(cfg, module.text_processor)
    val, info = eval_loader(cfg, "val", module.text_processor)
    module.eval_data = info
    assert len(train) == 1 and info["categories"][14] == "person"     # the photo, 20 contiguous classes

    before, loss_before = _validate(module, val, cfg, str(tmp_path / "before"))
    os.makedirs(cfg.results_dir, exist_ok=True)
    trainer = build_trainer(cfg, cfg.results_dir, [], enable_progress_bar=False)
    trainer.fit(module, train, val)
    after, loss_after = dict(module.last_val_metrics), float(trainer.callback_metrics["val_loss"])

    assert trainer.global_step == STEPS
    box, seg = "[bbox] val_mAP@50", "[segm] val_mAP@50"
    summary = (f"before {before[box]:.3f}/{before[seg]:.3f}, after {after[box]:.3f}/{after[seg]:.3f} "
               f"(bbox/segm mAP@50), val loss {loss_before:.2f} -> {loss_after:.2f}")
    print(summary)
    # Random init finds none of the 19 instances at IoU 0.5 (measured 0.000 bbox and segm).
    # This seed reached bbox 0.72-0.74 / segm 0.56-0.64 here (two deformable-attention kernels).
    # Another CPU sums floats in another order and follows another trajectory, so the bounds sit
    # under the worst of five seeds measured with this recipe (bbox 0.30-0.80, segm 0.24-0.64),
    # still far above the untrained 0.
    assert after[box] >= 0.2 and after[box] >= before[box] + 0.2, summary
    assert after[seg] >= 0.1 and after[seg] >= before[seg] + 0.1, summary
    # The loss on the photo itself fell (measured 12.2 -> 1.5).
    assert loss_after < 0.5 * loss_before, f"val loss {loss_before:.2f} -> {loss_after:.2f}"
