"""Collecting evaluation state from every process (torch.distributed), or none at all.

Evaluators keep plain Python objects (result dicts, per-sample records); at the
end they are gathered on rank 0, which computes the metrics, and the result is
broadcast back so every process logs the same numbers. Without an initialised
process group these functions are identities.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def gather_to_rank0(obj: T) -> list[T] | None:
    """Every process's ``obj`` in rank order on rank 0, None on other ranks; ``[obj]`` alone."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_from_rank0(obj: T | None) -> T:
    """Rank 0's ``obj`` on every process (identity without a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
