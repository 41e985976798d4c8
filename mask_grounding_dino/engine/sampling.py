"""Deterministic, resumable, distributed-aware sampling.

A run killed mid-epoch and restarted must end with the same weights as an
uninterrupted run. Three things make that true here:

* the order of samples depends only on ``(seed, epoch)``;
* every sample carries its own seed, derived from ``(seed, epoch, position)``,
  and :class:`SeededDataset` seeds the random generators with it before the
  augmentations run, so worker count and timing do not matter;
* :class:`ResumableDataLoader` reports how many batches of the epoch were
  consumed (Lightning stores this in the checkpoint) and skips them on resume.
"""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def _dist_info(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None or rank is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            num_replicas = torch.distributed.get_world_size() if num_replicas is None else num_replicas
            rank = torch.distributed.get_rank() if rank is None else rank
    return (num_replicas or 1), (rank or 0)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed for one sample, independent of workers and resumption."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs for this process's share of an epoch.

    Args:
        num_samples: dataset length.
        shuffle: permute per epoch (seeded by ``seed + epoch``).
        seed: base seed shared by all processes.
        num_replicas, rank: distributed share (default: from torch.distributed, else 1/0).
        drop_last: drop the tail so every replica gets the same count (else pad by wrapping).
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None, drop_last: bool = False):
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        # Resolved when used, not here: the train action builds its loader before
        # Lightning starts the process group, so at construction every rank looks like 0 of 1.
        self._num_replicas, self._rank = num_replicas, rank
        self.drop_last = drop_last
        self.epoch = 0
        self.skip = 0  # samples of this epoch to skip once (set on resume)

    @property
    def num_replicas(self) -> int:
        return _dist_info(self._num_replicas, self._rank)[0]

    @property
    def rank(self) -> int:
        return _dist_info(self._num_replicas, self._rank)[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _per_replica(self) -> int:
        if self.drop_last:
            return self.num_samples // self.num_replicas
        return -(-self.num_samples // self.num_replicas)

    def __len__(self) -> int:
        return self._per_replica()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            order = list(range(self.num_samples))
        num_replicas, rank = self.num_replicas, self.rank
        total = self._per_replica() * num_replicas
        if total > len(order) and order:
            order = (order * (total // len(order) + 1))[:total]
        order = order[:total]
        positions = range(rank, total, num_replicas)
        skip, self.skip = self.skip, 0
        for n, pos in enumerate(positions):
            if n < skip:
                continue
            yield order[pos], sample_seed(self.seed, self.epoch, pos)


class SeededDataset(Dataset):
    """Wraps a dataset so that item ``(index, seed)`` runs with all RNGs seeded by ``seed``.

    Augmentations that draw from ``random``, ``numpy.random`` or ``torch`` become a
    pure function of the sample, whatever worker process computes it.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item):
        if isinstance(item, tuple):
            index, seed = item
            random.seed(seed)
            np.random.seed(seed % (2**32))
            torch.manual_seed(seed)
            return self.dataset[index]
        return self.dataset[item]

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside the epoch survives a checkpoint.

    Lightning calls :meth:`state_dict` when it writes a checkpoint and
    :meth:`load_state_dict` when it resumes. ``batches_done`` is set by the
    training callback after each optimiser step (not counted here, because
    Lightning pre-fetches batches ahead of the step).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_done = 0
        self._resume: dict | None = None

    @property
    def resumable_sampler(self) -> ResumableSampler | None:
        sampler = self.batch_sampler.sampler if self.batch_sampler is not None else self.sampler
        return sampler if isinstance(sampler, ResumableSampler) else None

    def state_dict(self) -> dict:
        sampler = self.resumable_sampler
        return {"epoch": sampler.epoch if sampler else 0, "batches_done": int(self.batches_done)}

    def load_state_dict(self, state: dict) -> None:
        """Resume at the saved position, and put the sampler in the epoch that resumes.

        Lightning creates the first iterator before it calls ``set_epoch`` for the
        resumed epoch (and worker processes take indices at once), so the epoch is set
        here. A state saved after the epoch's last batch resumes at the next epoch.
        """
        epoch, done = int(state.get("epoch", 0)), int(state.get("batches_done", 0))
        if done >= super().__len__():
            epoch, done = epoch + 1, 0
        sampler = self.resumable_sampler
        if sampler is not None:
            sampler.set_epoch(epoch)
        self._resume = {"epoch": epoch, "batches_done": done}

    def __iter__(self):
        sampler = self.resumable_sampler
        self.batches_done = 0
        if self._resume is not None and sampler is not None:
            if int(self._resume.get("epoch", -1)) == sampler.epoch:
                done = int(self._resume.get("batches_done", 0))
                sampler.skip = done * int(self.batch_size or 1)
                self.batches_done = done
            self._resume = None
        return super().__iter__()

    def __len__(self) -> int:
        return super().__len__()
