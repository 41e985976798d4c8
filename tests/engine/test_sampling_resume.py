"""The loader's resume and distributed behaviour in the order Lightning drives it.

Lightning restores the loader state, creates the first iterator, and only then calls
``set_epoch`` for the resumed epoch; the train action builds the loader before the
process group exists. These tests replay exactly that order.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mask_grounding_dino.engine.sampling import ResumableDataLoader, ResumableSampler, SeededDataset


class _Indexed(Dataset):
    """Item i is the tensor [i, random draw]: equal draws prove equal per-sample seeding."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item()])


def _loader(workers: int = 0) -> ResumableDataLoader:
    return ResumableDataLoader(SeededDataset(_Indexed()), batch_size=3, sampler=ResumableSampler(12, seed=7),
                               num_workers=workers)


def _full_epoch(epoch: int) -> list[torch.Tensor]:
    loader = _loader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def _lightning_resume(state: dict, resumed_epoch: int, workers: int = 0) -> list[torch.Tensor]:
    loader = _loader(workers)
    loader.load_state_dict(state)
    iterator = iter(loader)                 # FitLoop.setup_data
    loader.sampler.set_epoch(resumed_epoch)  # FitLoop.on_advance_start, after the iterator exists
    return list(iterator)


def test_mid_epoch_resume_in_a_later_epoch_skips_what_was_trained():
    full = _full_epoch(3)
    for workers in (0, 1):  # a worker takes its first indices as soon as the iterator exists
        resumed = _lightning_resume({"epoch": 3, "batches_done": 1}, resumed_epoch=3, workers=workers)
        assert len(resumed) == 3 and all(torch.equal(a, b) for a, b in zip(resumed, full[1:]))


def test_state_saved_after_the_last_batch_resumes_at_the_next_epoch():
    resumed = _lightning_resume({"epoch": 0, "batches_done": 4}, resumed_epoch=1)
    expected = _full_epoch(1)
    assert len(resumed) == 4 and all(torch.equal(a, b) for a, b in zip(resumed, expected))


def test_replicas_are_read_when_iterating_not_when_built(monkeypatch):
    sampler = ResumableSampler(12, seed=7)  # built before the process group exists
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    share = [i for i, _ in sampler]
    others = [i for i, _ in ResumableSampler(12, seed=7, num_replicas=2, rank=0)]
    assert len(sampler) == len(share) == 6
    assert sorted(share + others) == list(range(12))
