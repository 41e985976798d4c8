"""The eager gather sampler with its hand-written backward (``kernels/gather_autograd.py``):
values and all three gradients against ``grid_sample`` (the reference), in every chunking."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.model import ms_deform_attn as msda_module
from mask_grounding_dino.model.kernels import gather_autograd as fast
from mask_grounding_dino.model.kernels.grid_sample import ms_deform_attn_grid_sample

SHAPES = [(5, 7), (3, 4), (1, 2)]      # includes a one-row level (edge handling)


def make_inputs(batch=2, queries=9, heads=2, dim=3, points=2, shapes=SHAPES, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    value = torch.randn(batch, sum(h * w for h, w in shapes), heads, dim, generator=gen, dtype=dtype)
    # -0.4..1.4: many points partly or wholly outside the map (zero padding, clamped coordinates).
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen, dtype=dtype) * 1.8 - 0.4
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen, dtype=dtype)
    return value, locations, weights


def outputs_and_grads(fn, value, locations, weights, needs=(True, True, True)):
    inputs = [t.clone().requires_grad_(n) for t, n in zip((value, locations, weights), needs)]
    out = fn(inputs[0], SHAPES, inputs[1], inputs[2])
    probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    wanted = [t for t in inputs if t.requires_grad]
    grads = torch.autograd.grad((out * probe).sum(), wanted)
    return out.detach(), grads


@pytest.mark.parametrize("chunk", [1, 24, 1 << 20])
def test_values_and_gradients_equal_grid_sample_in_every_chunking(monkeypatch, chunk):
    # chunk 1: one query per chunk; 24: chunks that do not divide the queries; 2^20: one chunk.
    monkeypatch.setattr(fast, "CHUNK_POINTS", chunk)
    monkeypatch.setattr(fast, "CHUNK_POINTS_GRAD", chunk)
    value, locations, weights = make_inputs(seed=1)
    got = outputs_and_grads(fast.gather_sample, value, locations, weights)
    want = outputs_and_grads(ms_deform_attn_grid_sample, value, locations, weights)
    # float64, the same arithmetic up to reassociation: equal to rounding (~1e-15 of O(1) values).
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-12)
    for ours, ref in zip(got[1], want[1]):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True)])
def test_only_the_requested_gradients_are_computed_and_right(needs):
    value, locations, weights = make_inputs(seed=2)
    got = outputs_and_grads(fast.gather_sample, value, locations, weights, needs)
    want = outputs_and_grads(ms_deform_attn_grid_sample, value, locations, weights, needs)
    assert len(got[1]) == sum(needs)
    for ours, ref in zip(got[1], want[1]):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_passes_gradcheck():
    # Random locations avoid integer pixel coordinates, where bilinear interpolation has a kink.
    value, locations, weights = make_inputs(batch=1, queries=3, heads=2, dim=2, seed=3)
    inputs = tuple(t.requires_grad_() for t in (value, locations, weights))
    assert torch.autograd.gradcheck(lambda v, loc, w: fast.gather_sample(v, SHAPES, loc, w), inputs,
                                    eps=1e-7, atol=1e-6)


def test_float32_gradients_match_reference_and_stay_finite_when_repeated():
    value, locations, weights = make_inputs(batch=2, queries=40, heads=4, dim=8, dtype=torch.float32, seed=4)
    want = outputs_and_grads(ms_deform_attn_grid_sample, value, locations, weights)
    for _ in range(3):   # fresh buffers each time (the per-tap dots must not inherit stale memory)
        _, grads = outputs_and_grads(fast.gather_sample, value, locations, weights)
        for ours, ref in zip(grads, want[1]):
            assert torch.isfinite(ours).all()
            # float32: the pixel coordinate rounds at ~W * 6e-8; gradients are O(10).
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_int64_rows_give_the_same_result(monkeypatch):
    value, locations, weights = make_inputs(seed=5)
    want = outputs_and_grads(fast.gather_sample, value, locations, weights)
    monkeypatch.setattr(fast, "INT32_LIMIT", 0)        # force int64 row indices
    got = outputs_and_grads(fast.gather_sample, value, locations, weights)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    for ours, ref in zip(got[1], want[1]):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-14)


def test_non_contiguous_inputs_and_inference_mode():
    value, locations, weights = make_inputs(seed=6)
    want = ms_deform_attn_grid_sample(value, SHAPES, locations, weights)
    # Same values through transposed storage.
    loc_t = locations.transpose(0, 1).contiguous().transpose(0, 1)
    val_t = value.transpose(2, 3).contiguous().transpose(2, 3)
    with torch.inference_mode():
        got = fast.gather_sample(val_t, SHAPES, loc_t, weights)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_auto_backend_trains_with_gather_on_cpu_and_grid_sample_otherwise(monkeypatch):
    monkeypatch.delenv(msda_module.BACKEND_ENV, raising=False)
    value = torch.zeros(1, 4, 1, 1)
    assert msda_module.resolve_backend("auto", value, needs_grad=True) == "gather"
    assert msda_module.resolve_backend("auto", value.double(), needs_grad=True) == "gather"
    # Half precision has no hand-written backward: the reference path trains.
    assert msda_module.resolve_backend("auto", value.bfloat16(), needs_grad=True) == "grid_sample"
    assert msda_module.resolve_backend("auto", value.bfloat16(), needs_grad=False) == "gather"


def test_module_training_step_matches_grid_sample_backend():
    """The whole module (projections, softmax, locations) with both backends: same gradients."""
    torch.manual_seed(0)
    grads = []
    for backend in ("gather", "grid_sample"):
        torch.manual_seed(0)
        attn = msda_module.MultiScaleDeformableAttention(16, num_levels=3, num_heads=2, num_points=2,
                                                         backend=backend).double()
        for param in attn.parameters():     # the official init puts every point on a pixel centre
            torch.nn.init.normal_(param, std=0.3)
        gen = torch.Generator().manual_seed(1)
        query = torch.randn(2, 5, 16, generator=gen, dtype=torch.float64, requires_grad=True)
        value = torch.randn(2, 49, 16, generator=gen, dtype=torch.float64, requires_grad=True)
        reference = torch.rand(2, 5, 3, 4, generator=gen, dtype=torch.float64)
        pad = torch.zeros(2, 49, dtype=torch.bool)
        pad[1, -9:] = True
        out = attn(query, reference, value, torch.tensor(SHAPES), value_padding_mask=pad)
        out.square().sum().backward()
        grads.append([query.grad, value.grad] + [p.grad for p in attn.parameters()])
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_short_axis_softmax_equals_softmax():
    x = torch.randn(3, 7, 2, 12, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(3, 7, 2, 12, dtype=torch.float64)
    got = msda_module._softmax_last(x)
    want = x.softmax(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(torch.autograd.grad((got * probe).sum(), x)[0],
                               torch.autograd.grad((want * probe).sum(), x)[0], rtol=0, atol=1e-15)
