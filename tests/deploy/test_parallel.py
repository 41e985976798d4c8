"""How evaluate / inference split the data over processes: whole batches of the one-process order
in contiguous blocks (nothing repeated, nothing skipped), and which runs use several processes."""

from __future__ import annotations

import logging

import pytest
import torch

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.deploy.parallel import ShardedBatchSampler, parallel_settings


def _one_process_batches(n: int, batch_size: int) -> list[list[int]]:
    indices = list(range(n))
    return [indices[i:i + batch_size] for i in range(0, n, batch_size)]


@pytest.mark.parametrize("num_samples", [0, 1, 2, 5, 9, 16, 17])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_replicas", [1, 2, 3, 5])
def test_blocks_of_the_one_process_batches_in_rank_order(num_samples, batch_size, num_replicas):
    ranks = [list(ShardedBatchSampler(num_samples, batch_size, num_replicas, r)) for r in range(num_replicas)]
    # Joined in rank order, the ranks' batches are exactly the one-process batches: every image once,
    # each batch with the same images (same padding -> same detections), results in data order.
    assert [b for batches in ranks for b in batches] == _one_process_batches(num_samples, batch_size)
    sizes = [len(batches) for batches in ranks]
    assert sizes == ShardedBatchSampler(num_samples, batch_size, num_replicas, 0).block_sizes()
    assert [len(ShardedBatchSampler(num_samples, batch_size, num_replicas, r)) for r in range(num_replicas)] == sizes
    # Even to one batch, and rank 0's block is never the shorter one (its bar then covers every rank).
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_without_a_process_group_one_replica_runs_everything():
    sampler = ShardedBatchSampler(5, 2)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
    assert list(sampler) == [[0, 1], [2, 3], [4]]


def _spec(action: str, checkpoint: str, **keys):
    return load_spec(overrides={f"{action}.checkpoint": checkpoint, **{f"{action}.{k}": v for k, v in keys.items()}})


def test_one_device_runs_in_this_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parallel_settings(_spec("evaluate", "model.pth"), "evaluate", "model.pth") is None


def test_two_cpu_processes_use_ddp_over_gloo(monkeypatch, caplog):
    from lightning.pytorch.strategies import DDPStrategy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, also on a GPU machine
    with caplog.at_level(logging.INFO, logger="mask_grounding_dino"):
        settings = parallel_settings(_spec("inference", "model.pth", num_gpus=2), "inference", "model.pth")
    assert (settings["accelerator"], settings["devices"], settings["num_nodes"]) == ("cpu", 2, 1)
    assert isinstance(settings["strategy"], DDPStrategy)
    assert settings["strategy"]._process_group_backend == "gloo"
    assert "inference.num_gpus=2 runs 2 CPU processes (DDP over gloo)" in caplog.text


def test_nodes_count_too(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = parallel_settings(_spec("evaluate", "model.pth", num_nodes=2), "evaluate", "model.pth")
    assert (settings["devices"], settings["num_nodes"]) == (1, 2)


def test_onnx_runtime_stays_in_one_process_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="mask_grounding_dino"):
        assert parallel_settings(_spec("evaluate", "model.onnx", num_gpus=4), "evaluate", "model.onnx") is None
    notes = [r.getMessage() for r in caplog.records if "ONNX Runtime" in r.getMessage()]
    assert len(notes) == 1 and "evaluate.num_gpus=4" in notes[0] and "\n" not in notes[0]
