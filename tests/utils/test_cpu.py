"""Subnormal floats are flushed to zero inside our calls only; the caller's setting is restored."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.utils.cpu import denormals_flushed, flushed_denormals

SUBNORMAL = 1e-39     # below float32's smallest normal number (~1.18e-38)


def _times_one(value: float) -> float:
    return (torch.tensor([value], dtype=torch.float32) * 1.0).item()


@pytest.fixture(autouse=True)
def _leave_it_off():
    """Each test starts with flushing off and leaves it off, whatever happens inside."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def test_flushing_holds_inside_the_block_only():
    assert not denormals_flushed() and _times_one(SUBNORMAL) > 0.0
    with flushed_denormals() as supported:
        assert supported          # x86 with SSE3 and ARM support it (the CI machines are x86)
        assert denormals_flushed() and _times_one(SUBNORMAL) == 0.0
        assert _times_one(1e-30) == torch.tensor([1e-30]).item()     # normal values are kept
    assert not denormals_flushed() and _times_one(SUBNORMAL) > 0.0


def test_the_setting_is_restored_when_the_work_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with flushed_denormals():
            raise RuntimeError("boom")
    assert not denormals_flushed()


def test_a_caller_that_flushes_itself_keeps_it_and_nesting_keeps_the_outer_setting():
    with flushed_denormals():
        with flushed_denormals():
            pass
        assert denormals_flushed()         # the inner block does not switch the outer one off
    torch.set_flush_denormal(True)         # the user's own choice
    with flushed_denormals():
        pass
    assert denormals_flushed()


def test_as_a_decorator_each_call_is_scoped():
    @flushed_denormals()
    def work() -> bool:
        return denormals_flushed()

    assert work() and work()               # re-entered on every call
    assert not denormals_flushed()
