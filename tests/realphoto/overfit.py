"""Overfitting one converted photo through the training engine: the spec and the run.

Shared by the random-start overfit test and the pretrained-start comparison. The engine's own
pieces do the work: the spec -> :class:`GroundingModule`, ``train_loader`` over the converted
ODVG file, ``eval_loader`` over the contiguous COCO json and the ``train`` action's Lightning
trainer. One photo at batch 1 is one step per epoch, so ``validation_interval`` counts steps.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl

from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.data import eval_loader, train_loader
from mask_grounding_dino.engine.module import GroundingModule
from mask_grounding_dino.engine.trainer import build_trainer

STEPS = 150
SIZE = 320
BOX, SEG = "[bbox] val_mAP@50", "[segm] val_mAP@50"
#: The ``model`` keys of the pretrained start: the ImageNet EfficientNet-Lite0 installed with the package.
PRETRAINED = {"backbone": "efficientnet_lite0", "pretrained_backbone_path": "efficientnet_lite0"}


def overfit_spec(photo, results_dir: str, steps: int = STEPS, validate_every: int | None = None,
                 model: dict | None = None) -> dict:
    """A training spec over one converted photo: no crop or flip, one size, one epoch per step.

    ``model`` entries replace the default model keys (e.g. another backbone and its weights)."""
    return {
        "results_dir": results_dir, "wandb": {"enable": False},
        "model": {"backbone": "resnet_tiny", "text_encoder_type": "minilm", "hidden_dim": 64, "nheads": 4,
                  "dim_feedforward": 256, "enc_layers": 2, "dec_layers": 2, "num_queries": 50, "num_select": 50,
                  "num_region_queries": 8, "class_embed_bias": True, "log_scale": "auto", "dn_number": 3,
                  "has_mask": True, "dropout_ratio": 0.0,
                  # The region head trains too: without its loss, validation's IoI filter drops detections
                  # by an untrained union mask (best bbox mAP@50 of 200 steps 0.00-0.83 instead of 0.77-0.87).
                  "loss_types": ["labels", "boxes", "masks", "rela"], **(model or {})},
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
        "train": {"num_epochs": steps, "validation_interval": validate_every or steps, "freeze": ["bert"],
                  "clip_grad_norm": 0.1, "seed": 1, "activation_checkpoint": False,
                  "optim": {"lr": 1e-3, "lr_backbone": 1e-3, "lr_steps": [10 * steps], "weight_decay": 1e-4}},
    }


class ValidationLog(pl.Callback):
    """``(global step, TAO-named validation metrics)`` after every validation pass."""

    def __init__(self):
        self.points: list[tuple[int, dict[str, float]]] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.points.append((trainer.global_step, dict(pl_module.last_val_metrics)))


def validate(module, loader, cfg, results_dir: str) -> tuple[dict[str, float], float]:
    """(TAO-named validation metrics, validation loss) of the module as it is."""
    os.makedirs(results_dir, exist_ok=True)
    trainer = build_trainer(cfg, results_dir, [], enable_progress_bar=False)
    trainer.validate(module, loader, verbose=False)
    return dict(module.last_val_metrics), float(trainer.callback_metrics["val_loss"])


def prepare(spec: dict):
    """``(cfg, module, train loader, val loader)`` as the train action builds them (seeded first)."""
    cfg = load_spec(base=spec)
    pl.seed_everything(int(cfg.train.seed), verbose=False)     # as the train action: a fixed initialisation
    module = GroundingModule(spec_to_dict(cfg))
    train = train_loader(cfg, module.text_processor)
    val, info = eval_loader(cfg, "val", module.text_processor)
    module.eval_data = info
    return cfg, module, train, val


def fit(cfg, module, train, val, callbacks=()):
    """Train to ``train.num_epochs`` (validating every ``train.validation_interval`` steps)."""
    os.makedirs(cfg.results_dir, exist_ok=True)
    trainer = build_trainer(cfg, cfg.results_dir, list(callbacks), enable_progress_bar=False)
    trainer.fit(module, train, val)
    return trainer


def fit_curve(cfg, module, train, val) -> list[tuple[int, float, float]]:
    """:func:`fit`, returning ``(step, bbox mAP@50, segm mAP@50)`` of every validation pass."""
    log = ValidationLog()
    fit(cfg, module, train, val, callbacks=[log])
    return [(step, metrics[BOX], metrics[SEG]) for step, metrics in log.points]


def steps_to(curve, target: float) -> int | None:
    """The first step of ``curve`` whose bbox mAP@50 reaches ``target``; None when none does."""
    return next((step for step, box, _ in curve if box >= target), None)
