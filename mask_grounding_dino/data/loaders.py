"""DataLoaders for ``train`` / ``val`` / ``test`` / ``infer`` from an experiment spec.

* train: :class:`OdvgDataset` over ``train_data_sources``, shuffled (seeded by
  ``train.seed``), ``drop_last`` (TAO).
* val / test: ``val_data_sources`` / ``test_data_sources`` by ``data_type``: OD (or empty)
  -> :class:`CocoEvalDataset`, VG -> :class:`ReferringDataset`; in order, nothing dropped.
* infer: :class:`InferenceDataset` over ``infer_data_sources``.

``batch_size``: ``dataset.batch_size`` (``evaluate.batch_size`` / ``inference.batch_size``
for test / infer when > 0); ``workers``; ``pin_memory`` only when CUDA is available;
``persistent_workers`` when there are workers. Each worker seeds ``random`` and numpy from
its torch seed, which derives from the loader's seeded generator, so augmentation differs
per worker and epoch yet repeats run to run.

Distributed training: pass ``sampler`` (e.g. the engine's resumable sampler or a
``DistributedSampler``); without one the loader uses plain shuffling that Lightning can
replace with its distributed sampler.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import SpecError
from ..text import TextProcessor
from .collate import Collator
from .datasets import CocoEvalDataset, InferenceDataset, OdvgDataset, ReferringDataset

SPLITS = ("train", "val", "test", "infer")


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and numpy from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def build_dataset(cfg, split: str, *, text_processor: TextProcessor | None = None,
                  cache_dir: str | None = None) -> Dataset:
    """The dataset of ``split`` (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
    if split == "train":
        return OdvgDataset.from_config(cfg, text_processor=tp, cache_dir=cache_dir)
    if split == "infer":
        return InferenceDataset.from_config(cfg, text_processor=tp, cache_dir=cache_dir)
    key = "val_data_sources" if split == "val" else "test_data_sources"
    source = getattr(cfg.dataset, key)
    if not source.json_file or not source.image_dir:
        raise SpecError(f"dataset.{key}: image_dir and json_file are needed for {split} "
                        f"(got image_dir={source.image_dir!r}, json_file={source.json_file!r})")
    if (source.data_type or "OD").upper() == "VG":
        return ReferringDataset.from_config(cfg, split=split, text_processor=tp, cache_dir=cache_dir)
    return CocoEvalDataset.from_config(cfg, split=split, text_processor=tp, cache_dir=cache_dir)


def _batch_size(cfg, split: str) -> int:
    section = {"test": "evaluate", "infer": "inference"}.get(split)
    if section is not None:
        value = getattr(getattr(cfg, section, None), "batch_size", -1)
        if value is not None and int(value) > 0:
            return int(value)
    return int(cfg.dataset.batch_size)


def build_dataloader(cfg, split: str, *, dataset: Dataset | None = None,
                     text_processor: TextProcessor | None = None, sampler: Sampler | None = None,
                     batch_size: int | None = None, seed: int | None = None, size_divisibility: int = 32,
                     cache_dir: str | None = None) -> DataLoader:
    """A DataLoader yielding :class:`~.batch.Batch` for ``split``.

    Args:
        cfg: the ExperimentConfig.
        dataset: use this dataset instead of building it (e.g. wrapped by the engine).
        sampler: overrides the default order (distributed / resumable training).
        batch_size: overrides the spec's.
        seed: shuffling and worker seeds (default ``train.seed``).
        size_divisibility: batch padding multiple (see :mod:`.collate`).
    """
    tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
    dataset = dataset if dataset is not None else build_dataset(cfg, split, text_processor=tp, cache_dir=cache_dir)
    workers = max(0, int(cfg.dataset.workers))
    seed = int(cfg.train.seed if seed is None else seed)
    generator = torch.Generator().manual_seed(seed)
    train = split == "train"
    return DataLoader(
        dataset,
        batch_size=int(batch_size or _batch_size(cfg, split)),
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=workers,
        pin_memory=bool(cfg.dataset.pin_memory) and torch.cuda.is_available(),
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=generator,
        collate_fn=Collator(text_processor=tp, size_divisibility=size_divisibility),
    )
