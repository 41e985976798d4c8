"""Data loaders for training: the resumable train loader and the validation loader."""

from __future__ import annotations

import torch

from ..data.collate import Collator
from ..data.loaders import build_dataloader, build_dataset
from ..text import TextProcessor
from .sampling import ResumableDataLoader, ResumableSampler, SeededDataset


def train_loader(cfg, text_processor: TextProcessor, *, batch_size: int | None = None) -> ResumableDataLoader:
    """Shuffled, seeded per sample, resumable mid-epoch, split across processes."""
    dataset = SeededDataset(build_dataset(cfg, "train", text_processor=text_processor))
    sampler = ResumableSampler(len(dataset), shuffle=True, seed=int(cfg.train.seed), drop_last=True)
    workers = max(0, int(cfg.dataset.workers))
    return ResumableDataLoader(
        dataset, batch_size=int(batch_size or cfg.dataset.batch_size), sampler=sampler, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0,
        pin_memory=bool(cfg.dataset.pin_memory) and torch.cuda.is_available(),
        collate_fn=Collator(text_processor=text_processor))


def eval_loader(cfg, split: str, text_processor: TextProcessor):
    """``val`` or ``test`` loader plus what the evaluator needs to know about the data."""
    dataset = build_dataset(cfg, split, text_processor=text_processor)
    loader = build_dataloader(cfg, split, dataset=dataset, text_processor=text_processor)
    source = cfg.dataset.val_data_sources if split == "val" else cfg.dataset.test_data_sources
    data_type = (source.data_type or "OD").upper()
    info = {"data_type": data_type}
    if data_type == "OD":
        info.update(categories=dict(dataset.categories), coco_gt=source.json_file)
    return loader, info
