"""The Lightning module: TAO's training step, validation with metrics, optimiser.

Determinism: before every training step all RNGs are seeded from
``(train.seed, global_step, rank)``, so dropout, drop-path and denoising noise
are a function of the step alone and a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from typing import Any

import lightning.pytorch as pl
import torch

from ..config import load_spec
from ..data.batch import Batch
from ..model import MaskGroundingDINO
from ..model.criterion import SetCriterion
from ..model.postprocess import PostProcessor
from ..text import TextProcessor
from ..utils.atomic import atomic_write_json
from .evaluation import EvalRunner
from .optim import apply_freeze, build_optimizer, build_scheduler, warmup_factor

TAO_MODEL_NAME = "mask_grounding_dino"


class GroundingModule(pl.LightningModule):
    """Args:
        spec: the resolved experiment spec as a plain dict (stored in every checkpoint).
        eval_data: validation description set by the train action: ``data_type``,
            ``categories`` (OD: id -> name), ``coco_gt`` (OD ground truth). Not stored.
        load_text_weights: False builds the text encoder's architecture only, when a checkpoint
            (a resume, ``train.pretrained_model_path``) provides its weights.
    """

    def __init__(self, spec: dict, eval_data: dict | None = None, *, load_text_weights: bool = True):
        super().__init__()
        self.save_hyperparameters({"spec": spec})
        self.cfg = load_spec(base=spec)
        cfg = self.cfg
        self.model = MaskGroundingDINO.from_config(cfg.model, activation_checkpoint=cfg.train.activation_checkpoint,
                                                   load_text_weights=load_text_weights)
        self.frozen = apply_freeze(self.model, cfg.train.freeze)
        self._frozen_prefixes = tuple(p for p in (cfg.train.freeze or []) if p)
        if not any(p.requires_grad for p in self.model.bert.parameters()):
            self.model.enable_text_cache()
        self.criterion = SetCriterion.from_config(cfg.model)
        self.text_processor = TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
        self.eval_data = eval_data
        self._runner: EvalRunner | None = None
        self.last_val_metrics: dict[str, float] = {}
        self.applied_lr: float | None = None

    def train(self, mode: bool = True):
        """Train mode, except what ``train.freeze`` froze: modules under a frozen prefix stay in
        eval mode (BatchNorm statistics fixed, dropout off).

        TAO leaves dropout on inside a frozen BERT. We switch it off: a frozen encoder then
        computes the same features for the same phrase every time, the standard treatment of a
        frozen feature extractor, and those features are cached phrase by phrase
        (``model/text_cache.py``) so the text encoder costs nothing after the first steps.
        """
        super().train(mode)
        prefixes = getattr(self, "_frozen_prefixes", ())
        if mode and prefixes:
            for name, module in self.model.named_modules():
                if any(name == p or name.startswith(p + ".") for p in prefixes):
                    module.eval()
        return self

    def on_fit_start(self) -> None:
        # Lightning keeps the modes modules were built in, and transformers' from_pretrained
        # returns the text encoder in eval mode: put the trainable model in train mode
        # (dropout on, as in Grounding DINO and TAO), frozen parts excepted (see train()).
        self.train()

    # ------------------------------------------------------------------ steps
    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def forward(self, batch: Batch, with_targets: bool = False):
        return self.model(batch.images, *batch.text.as_tuple(), pixel_mask=batch.pixel_mask,
                          targets=batch.targets if with_targets else None)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed = (int(self.cfg.train.seed) * 1_000_003 + self.global_step * 97 + self.global_rank) % (2**31)
        torch.manual_seed(seed)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        outputs = self(batch, with_targets=True)
        losses = self.criterion(outputs, batch.targets)
        size = len(batch)
        self.log("train_loss", losses.total, prog_bar=True, batch_size=size)
        self.log("lr", self.step_lr(), prog_bar=True, batch_size=size)
        for name, value in losses.unweighted.items():
            if not any(name.endswith(f"_{i}") for i in range(10)):
                self.log(f"train/{name}", value, batch_size=size)
        return losses.total

    def step_lr(self) -> float:
        """Learning rate of the main parameter group for the coming optimiser step (warm-up included)."""
        scheduled = self.trainer.optimizers[0].param_groups[0]["lr"]
        return scheduled * warmup_factor(self.global_step, self.cfg.train.optim.warmup_steps)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Linear warm-up (``train.optim.warmup_steps``) applied on top of the epoch schedule.

        ``applied_lr`` keeps the main group's rate this step used (the history records it).
        """
        factor = warmup_factor(self.global_step, self.cfg.train.optim.warmup_steps)
        self.applied_lr = optimizer.param_groups[0]["lr"] * factor
        if factor != 1.0:
            scheduled = [g["lr"] for g in optimizer.param_groups]
            for group in optimizer.param_groups:
                group["lr"] *= factor
            optimizer.step(closure=optimizer_closure)
            for group, lr in zip(optimizer.param_groups, scheduled):
                group["lr"] = lr
        else:
            optimizer.step(closure=optimizer_closure)

    # ------------------------------------------------------------------ validation
    def _eval_runner(self) -> EvalRunner | None:
        if self._runner is None and self.eval_data:
            data_type = self.eval_data.get("data_type", "OD")
            post = PostProcessor.from_config(self.cfg.model, self.cfg.evaluate, data_type=data_type)
            self._runner = EvalRunner(postprocessor=post, text_processor=self.text_processor, data_type=data_type,
                                      categories=self.eval_data.get("categories"),
                                      coco_gt=self.eval_data.get("coco_gt"),
                                      with_segm=bool(self.cfg.dataset.has_mask),
                                      score_threshold=self.cfg.evaluate.conf_threshold)
        return self._runner

    def on_validation_epoch_start(self) -> None:
        runner = self._eval_runner()
        if runner is not None:
            runner.reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        outputs = self(batch)
        losses = self.criterion(outputs, batch.targets)
        self.log("val_loss", losses.total, prog_bar=True, batch_size=len(batch), sync_dist=True)
        runner = self._eval_runner()
        if runner is not None:
            runner.update(outputs, batch)

    def on_validation_epoch_end(self) -> None:
        runner = self._eval_runner()
        if runner is None or self.trainer.sanity_checking:
            return
        keys, metrics = runner.compute("val")
        for name, value in keys.items():
            self.log(name, float(value), prog_bar=name in ("[bbox] val_mAP@50", "val_mIoU"), sync_dist=False,
                     rank_zero_only=True)
        self.last_val_metrics = {k: float(v) for k, v in keys.items()}
        if self.trainer.is_global_zero:
            results_dir = self.cfg.train.results_dir or os.path.join(self.cfg.results_dir, "train")
            record = {"epoch": self.current_epoch, "global_step": self.global_step, "metrics": self.last_val_metrics,
                      "val_loss": float(self.trainer.callback_metrics.get("val_loss", float("nan")))}
            atomic_write_json(os.path.join(results_dir, f"val_metrics_epoch_{self.current_epoch:03d}.json"),
                              {**record, "details": metrics.to_dict()})
            with open(os.path.join(results_dir, "val_metrics.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        optimizer, _ = build_optimizer(self.model, self.cfg.model, self.cfg.train.optim)
        scheduler = build_scheduler(optimizer, self.cfg.train.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tao_model"] = TAO_MODEL_NAME
        checkpoint["model_config"] = dict(self.model.build_config)
