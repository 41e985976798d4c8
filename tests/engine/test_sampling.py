import torch
from torch.utils.data import Dataset

from mask_grounding_dino.engine.sampling import (ResumableDataLoader, ResumableSampler,
                                                 SeededDataset)


class _Noisy(Dataset):
    """Returns its index and a random draw: equal draws prove equal seeding."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item()])


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [b for b in loader]


def test_order_depends_on_seed_and_epoch_only():
    s = ResumableSampler(10, seed=3)
    s.set_epoch(1)
    a = list(s)
    s2 = ResumableSampler(10, seed=3)
    s2.set_epoch(1)
    assert a == list(s2)
    s2.set_epoch(2)
    assert a != list(s2)
    assert sorted(i for i, _ in a) == list(range(10))


def test_replicas_partition_the_epoch():
    parts = [list(ResumableSampler(10, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(p) == 4 for p in parts)  # 10 padded to 12 by wrapping
    assert set(i for p in parts for i, _ in p) == set(range(10))


def test_seeded_samples_identical_across_workers():
    ds = SeededDataset(_Noisy())
    base = torch.cat(_epoch(ResumableDataLoader(ds, batch_size=2, sampler=ResumableSampler(10, seed=1)), 0))
    for workers in (0, 2):
        loader = ResumableDataLoader(ds, batch_size=2, sampler=ResumableSampler(10, seed=1),
                                     num_workers=workers)
        assert torch.equal(torch.cat(_epoch(loader, 0)), base)


def test_resume_skips_consumed_batches_of_the_same_epoch_only():
    ds = SeededDataset(_Noisy())
    full = _epoch(ResumableDataLoader(ds, batch_size=3, sampler=ResumableSampler(10, seed=5)), 4)
    loader = ResumableDataLoader(ds, batch_size=3, sampler=ResumableSampler(10, seed=5))
    loader.load_state_dict({"epoch": 4, "batches_done": 2})
    resumed = _epoch(loader, 4)
    assert len(resumed) == len(full) - 2
    assert all(torch.equal(a, b) for a, b in zip(resumed, full[2:]))
    assert loader.batches_done == 2  # counting continues from the resumed position
    # a state saved in another epoch does not skip anything
    loader.load_state_dict({"epoch": 3, "batches_done": 2})
    assert len(_epoch(loader, 4)) == len(full)
