"""CPU floating-point settings for our own training and inference calls, scoped.

Subnormal floats (below ~1.2e-38 in float32) appear in weights, activations and gradients
as training goes on, and every multiply that touches one takes a slow microcode path.
Measured on the quickstart model after 200 steps (1 thread, batch 8): the train step went
from 1.3 s at initialisation to 2.5 s, ``aten::mm`` and convolution backward 4-8x slower;
with subnormals flushed to zero (FTZ/DAZ) it stays at 1.2-1.3 s. Values that small carry no
information for these models; GPUs flush them by default in most kernels.

The setting is the calling thread's floating-point state (torch's intra-op worker threads
keep their own), which also belongs to the user's code in the same process; so it is never
left switched on: :func:`flushed_denormals` sets it around our own work (the training loop,
each forward of a deployed model) and restores what was there before, also when the work
raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

_SUBNORMAL = np.float32(1e-39)     # below float32's smallest normal number (~1.18e-38)


def denormals_flushed() -> bool:
    """Whether subnormal floats are flushed to zero in this thread right now (a probe: a
    subnormal times one stays subnormal unless FTZ/DAZ is on)."""
    return bool(_SUBNORMAL * np.float32(1.0) == 0.0)


@contextlib.contextmanager
def flushed_denormals() -> Iterator[bool]:
    """Flush subnormal floats to zero on the CPU inside the block, then restore the previous
    setting. Yields whether the CPU supports it (x86 with SSE3, ARM: yes). Nested blocks keep
    the outer block's setting; usable as a decorator."""
    import torch    # here: importing this module must not import torch

    before = denormals_flushed()
    supported = bool(torch.set_flush_denormal(True))
    try:
        yield supported
    finally:
        if supported and not before:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Within the block, torch picks its deterministic CPU kernels (``enabled``); the previous
    setting comes back on exit.

    Why: with more than one intra-op thread, torch's CPU ``index_put_(accumulate=True)`` (the
    backward of advanced indexing with repeated indices: the mask head's
    ``mask_feats.flatten(2)[batch_idx]`` over the matched queries) adds into the gradient with
    atomic float additions from all threads at once. Their order follows the threads' timing,
    so the rounding of the sums, and from the first steps on the weights, change with the load
    of the machine. Measured on the quickstart model (2 threads): the same batch's backward,
    repeated in one process, gave different gradients for 128 of 269 parameters (mask head,
    encoder, backbone); two 12-step runs with the same seed differed from step 4 on. Torch's
    deterministic mode runs these ops serially: the repeats and the runs were bit-identical,
    with the other core busy or not.

    ``warn_only``: an op without a deterministic implementation warns instead of stopping the
    run. Uninitialised memory is not filled with NaN (torch's default in this mode): no
    kernel of ours reads it, and the fill would cost a pass over every ``torch.empty``.
    """
    import torch    # here, like flushed_denormals: callers import this module before they need torch
    from torch.utils import deterministic

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(bool(enabled), warn_only=True)
    deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        deterministic.fill_uninitialized_memory = before[2]
