"""Multi-scale deformable attention: every backend against a naive reference,
gradients, the module against transformers' implementation, backend selection."""

from __future__ import annotations

import math

import pytest
import torch

from mask_grounding_dino.model import ms_deform_attn as msda_module
from mask_grounding_dino.model.kernels import gather as gather_kernels
from mask_grounding_dino.model.kernels import triton_msda
from mask_grounding_dino.model.kernels.grid_sample import ms_deform_attn_grid_sample
from mask_grounding_dino.model.ms_deform_attn import (MultiScaleDeformableAttention, ms_deform_attn,
                                                      resolve_backend)

SHAPES = [(5, 7), (3, 4), (1, 2)]      # includes a one-row level (edge handling)


def naive_ms_deform_attn(value, shapes, locations, weights):
    """Straightforward loops: bilinear interpolation with zeros outside the map.

    A location x in [0, 1] is the pixel coordinate x * W - 0.5 (align_corners=False).
    value [B, Nv, H, D], locations [B, Nq, H, L, P, 2], weights [B, Nq, H, L, P] -> [B, Nq, H*D].
    """
    batch, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(batch, queries, heads, dim, dtype=value.dtype)
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                for lvl, (height, width) in enumerate(shapes):
                    for p in range(points):
                        x = locations[b, q, h, lvl, p, 0].item() * width - 0.5
                        y = locations[b, q, h, lvl, p, 1].item() * height - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
                            if 0 <= xi < width and 0 <= yi < height:
                                bilinear = (1 - abs(x - xi)) * (1 - abs(y - yi))
                                pixel = value[b, starts[lvl] + yi * width + xi, h]
                                out[b, q, h] += weights[b, q, h, lvl, p] * bilinear * pixel
    return out.view(batch, queries, heads * dim)


def make_inputs(batch=2, queries=5, heads=2, dim=3, points=2, shapes=SHAPES,
                dtype=torch.float64, seed=0, special_points=True):
    gen = torch.Generator().manual_seed(seed)
    num_value = sum(h * w for h, w in shapes)
    value = torch.randn(batch, num_value, heads, dim, generator=gen, dtype=dtype)
    # -0.4..1.4: many points partly or wholly outside the map, to exercise the zero padding.
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen,
                           dtype=dtype) * 1.8 - 0.4
    if special_points:   # a pixel centre and the map's corner (kinks: not for gradient tests)
        locations[0, 0, 0, 0, 0] = torch.tensor([0.5 / 7, 0.5 / 5], dtype=dtype)
        locations[0, 0, 0, 0, 1] = torch.tensor([0.0, 1.0], dtype=dtype)
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen, dtype=dtype)
    return value, torch.tensor(shapes), locations, weights


def run_backend(name, value, shapes, locations, weights):
    if name == "gather":
        return gather_kernels.ms_deform_attn_gather(value, shapes, locations, weights)
    if name == "gather_export":
        return gather_kernels.ms_deform_attn_gather(value, shapes, locations, weights,
                                                    reduce="index_select")
    if name == "grid_sample":
        return ms_deform_attn_grid_sample(value, shapes, locations, weights)
    raise AssertionError(name)


@pytest.mark.parametrize("backend", ["gather", "gather_export", "grid_sample"])
def test_pure_pytorch_backends_equal_naive_reference(backend):
    value, shapes, locations, weights = make_inputs()
    expected = naive_ms_deform_attn(value, SHAPES, locations, weights)
    got = run_backend(backend, value, shapes, locations, weights)
    # float64 and the same arithmetic up to reassociation: equal to rounding (~1e-15).
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_gather_gradients_equal_grid_sample_gradients():
    value, shapes, locations, weights = make_inputs(seed=1, special_points=False)
    grads = []
    for backend in ("gather", "grid_sample"):
        inputs = [t.clone().requires_grad_() for t in (value, locations, weights)]
        out = run_backend(backend, inputs[0], shapes, inputs[1], inputs[2])
        grads.append(torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
                                          .view_as(out)).sum(), inputs))
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)   # float64: rounding only


def test_gather_passes_gradcheck():
    # Random locations avoid integer pixel coordinates, where bilinear interpolation has a kink.
    value, shapes, locations, weights = make_inputs(batch=1, queries=2, heads=2, dim=2, seed=2,
                                                   special_points=False)
    inputs = tuple(t.requires_grad_() for t in (value, locations, weights))
    assert torch.autograd.gradcheck(
        lambda v, loc, w: gather_kernels.ms_deform_attn_gather(v, shapes, loc, w), inputs,
        eps=1e-7, atol=1e-6)


def test_float32_gather_equals_grid_sample_at_encoder_like_size():
    # A 64x96 level: float32 rounding of the pixel coordinate (~W * 6e-8) bounds the difference.
    shapes = [(64, 96), (32, 48)]
    value, shape_t, locations, weights = make_inputs(batch=1, queries=200, heads=2, dim=8,
                                                     points=2, shapes=shapes, dtype=torch.float32)
    got = gather_kernels.ms_deform_attn_gather(value, shape_t, locations, weights)
    ref = ms_deform_attn_grid_sample(value, shape_t, locations, weights)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)


def test_nan_location_does_not_crash_gather():
    value, shapes, locations, weights = make_inputs()
    locations[1, 2, 1, 0, 0, 0] = float("nan")
    out = gather_kernels.ms_deform_attn_gather(value, shapes, locations, weights)
    untouched = gather_kernels.ms_deform_attn_gather(value[:1], shapes, locations[:1], weights[:1])
    torch.testing.assert_close(out[:1], untouched)      # other rows unaffected
    assert out.shape == (2, 5, 6)


TRITON_CHECK = """
import json, sys
import torch
sys.path.insert(0, {tests_dir!r})
from test_ms_deform_attn import make_inputs
from mask_grounding_dino.model.kernels import triton_msda
from mask_grounding_dino.model.kernels.gather import level_start_index_of
from mask_grounding_dino.model.kernels.grid_sample import ms_deform_attn_grid_sample
value, shapes, locations, weights = make_inputs(seed=3, dim=5, special_points=False)
ref_in = [t.clone().requires_grad_() for t in (value, locations, weights)]
ref = ms_deform_attn_grid_sample(ref_in[0], shapes, ref_in[1], ref_in[2])
tri_in = [t.float().requires_grad_() for t in (value, locations, weights)]
out = triton_msda.ms_deform_attn_triton(tri_in[0], shapes, tri_in[1], tri_in[2],
                                        level_start_index_of(shapes))
grad_out = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
ref_grads = torch.autograd.grad(ref, ref_in, grad_out)
tri_grads = torch.autograd.grad(out, tri_in, grad_out.float())
report = {{"interpreting": triton_msda.interpreting(), "dtype": str(out.dtype),
          "forward": (out.double() - ref).abs().max().item()}}
for name, got, want in zip(("value", "locations", "weights"), tri_grads, ref_grads):
    report[name] = (got.double() - want).abs().max().item()
    report[name + "_scale"] = want.abs().max().item()
print(json.dumps(report))
"""


@pytest.mark.skipif(not triton_msda.available(), reason="triton is not installed")
def test_triton_kernel_in_interpreter_forward_and_backward():
    """The GPU kernel, run by Triton's CPU interpreter (no GPU here), against the reference.

    In a subprocess: TRITON_INTERPRET must be set before triton is first imported.
    """
    import json
    import os
    import pathlib
    import subprocess
    import sys

    script = TRITON_CHECK.format(tests_dir=str(pathlib.Path(__file__).parent))
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["interpreting"] and report["dtype"] == "torch.float32"
    # float32 arithmetic against a float64 reference, values O(1): 1e-5 is ~100 ulp.
    assert report["forward"] < 1e-5
    for name in ("value", "locations", "weights"):
        # Location gradients scale with the map size (up to 7 here): relative 1e-5.
        assert report[name] < 1e-5 * max(1.0, report[name + "_scale"]), (name, report)


# --- the module -------------------------------------------------------------------------


def hf_attention(embed_dim, levels, heads, points):
    from transformers import GroundingDinoConfig
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        GroundingDinoMultiscaleDeformableAttention)

    config = GroundingDinoConfig(d_model=embed_dim, num_feature_levels=levels)
    return GroundingDinoMultiscaleDeformableAttention(config, num_heads=heads, n_points=points)


@pytest.mark.parametrize("coords", [2, 4])
@pytest.mark.parametrize("backend", ["gather", "grid_sample"])
def test_module_loads_and_matches_transformers(coords, backend):
    torch.manual_seed(0)
    theirs = hf_attention(32, 3, 4, 2).eval()
    for param in theirs.parameters():            # non-trivial weights (the init has zeros)
        torch.nn.init.normal_(param, std=0.3)
    ours = MultiScaleDeformableAttention(32, num_levels=3, num_heads=4, num_points=2,
                                         backend=backend).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)    # same parameter names
    shapes = torch.tensor(SHAPES)
    start = gather_kernels.level_start_index_of(shapes)
    query, value = torch.randn(2, 6, 32), torch.randn(2, 49, 32)
    pad = torch.zeros(2, 49, dtype=torch.bool)
    pad[1, -9:] = True
    reference = torch.rand(2, 6, 3, coords)
    with torch.no_grad():
        want = theirs(query, attention_mask=~pad, encoder_hidden_states=value,
                      reference_points=reference, spatial_shapes=shapes,
                      spatial_shapes_list=SHAPES, level_start_index=start)[0]
        got = ours(query, reference, value, shapes, start, value_padding_mask=pad)
    # float32, same formula; the gather path reassociates the sums: a few ulp of O(10) values.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_official_initialisation():
    attn = MultiScaleDeformableAttention(64, num_levels=2, num_heads=4, num_points=3)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    # Head k points along 2 pi k / 4, scaled onto the unit square; point p at distance p + 1.
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    for p in range(3):
        torch.testing.assert_close(bias[:, 0, p], directions * (p + 1), rtol=0, atol=1e-6)
        torch.testing.assert_close(bias[:, 1, p], directions * (p + 1), rtol=0, atol=1e-6)
    assert attn.sampling_offsets.weight.abs().sum() == 0
    assert attn.attention_weights.weight.abs().sum() == 0 and attn.attention_weights.bias.abs().sum() == 0
    assert attn.value_proj.bias.abs().sum() == 0 and attn.output_proj.bias.abs().sum() == 0
    assert set(dict(attn.named_parameters())) == {
        f"{name}.{kind}" for name in ("sampling_offsets", "attention_weights", "value_proj", "output_proj")
        for kind in ("weight", "bias")}


def test_batch_first_false_is_the_transpose():
    torch.manual_seed(1)
    first = MultiScaleDeformableAttention(16, num_levels=3, num_heads=2, num_points=2)
    second = MultiScaleDeformableAttention(16, num_levels=3, num_heads=2, num_points=2, batch_first=False)
    second.load_state_dict(first.state_dict())
    shapes = torch.tensor(SHAPES)
    query, value, reference = torch.randn(2, 4, 16), torch.randn(2, 49, 16), torch.rand(2, 4, 3, 2)
    out = first(query, reference, value, shapes)
    out_t = second(query.transpose(0, 1), reference, value.transpose(0, 1), shapes)
    torch.testing.assert_close(out_t.transpose(0, 1), out)
    assert out.shape == (2, 4, 16)


def test_module_backward_reaches_every_parameter():
    torch.manual_seed(2)
    attn = MultiScaleDeformableAttention(16, num_levels=3, num_heads=2, num_points=2)
    for param in attn.parameters():   # the official init zeroes the query's weights
        torch.nn.init.normal_(param, std=0.2)
    shapes = torch.tensor(SHAPES)
    query, value = torch.randn(2, 4, 16, requires_grad=True), torch.randn(2, 49, 16, requires_grad=True)
    attn(query, torch.rand(2, 4, 3, 4), value, shapes).square().sum().backward()
    for name, param in attn.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert query.grad.abs().sum() > 0 and value.grad.abs().sum() > 0


# --- backend selection ------------------------------------------------------------------


def test_auto_backend_on_cpu_is_gather_and_env_overrides(monkeypatch):
    value = torch.zeros(1, 4, 1, 1)
    monkeypatch.delenv(msda_module.BACKEND_ENV, raising=False)
    assert resolve_backend("auto", value) == "gather"
    # float32/float64 CPU training takes the gather path with its hand-written backward ...
    assert resolve_backend("auto", value, needs_grad=True) == "gather"
    # ... other dtypes (no hand-written backward) the grid_sample path.
    assert resolve_backend("auto", value.half(), needs_grad=True) == "grid_sample"
    assert resolve_backend("grid_sample", value) == "grid_sample"
    monkeypatch.setenv(msda_module.BACKEND_ENV, "grid_sample")
    assert resolve_backend("auto", value) == "grid_sample"
    monkeypatch.setenv(msda_module.BACKEND_ENV, "fast")
    with pytest.raises(ValueError, match="MGDINO_MSDA_BACKEND"):
        resolve_backend("auto", value)
    with pytest.raises(ValueError, match="unknown"):
        MultiScaleDeformableAttention(16, num_heads=2, backend="cuda")


def test_failing_gpu_kernel_falls_back_once_with_a_warning(monkeypatch):
    """'auto' must never fail because the fused kernel cannot run (the '_C not defined' class)."""
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler for this GPU")

    monkeypatch.setattr(msda_module, "_triton_failed", None)
    monkeypatch.setattr(msda_module, "resolve_backend", lambda *args: "triton")
    monkeypatch.setattr(msda_module._triton, "ms_deform_attn_triton", broken)
    monkeypatch.setattr(msda_module._triton, "available", lambda: True)
    value, shapes, locations, weights = make_inputs()
    with pytest.warns(RuntimeWarning, match="no compiler"):
        out = ms_deform_attn(value, shapes, locations, weights, backend="auto")
    torch.testing.assert_close(out, run_backend("grid_sample", value, shapes, locations, weights))
    assert "no compiler" in msda_module._triton_failed
    with pytest.raises(RuntimeError, match="no compiler"):      # asked for explicitly: no fallback
        ms_deform_attn(value, shapes, locations, weights, backend="triton")


def test_deterministic_mode_takes_the_gather_path_for_gradients(monkeypatch):
    """model.precise_msda: gradients come from the gather formulation (no atomic adds), also where
    'auto' or the environment would take another backend; explicit choices and forward-only
    calls are left alone."""
    value = torch.zeros(1, 4, 1, 1)
    monkeypatch.setenv(msda_module.BACKEND_ENV, "grid_sample")
    assert resolve_backend("auto", value, needs_grad=True, deterministic=True) == "gather"
    assert resolve_backend("auto", value, needs_grad=True) == "grid_sample"
    monkeypatch.delenv(msda_module.BACKEND_ENV)
    assert resolve_backend("auto", value.half(), needs_grad=True, deterministic=True) == "gather"
    assert resolve_backend("auto", value.half(), needs_grad=True) == "grid_sample"
    assert resolve_backend("grid_sample", value, needs_grad=True, deterministic=True) == "grid_sample"


def test_deterministic_mode_gives_identical_gradients_and_the_same_values():
    """Three backward passes through a deterministic module give bit-identical gradients, equal
    (to float32 rounding) to the default path's."""
    torch.manual_seed(0)
    module = MultiScaleDeformableAttention(16, num_levels=len(SHAPES), num_heads=2, num_points=2,
                                           deterministic=True)
    shapes = torch.tensor(SHAPES)
    num_value = sum(h * w for h, w in SHAPES)
    query, value = torch.randn(2, 6, 16), torch.randn(2, num_value, 16)
    reference = torch.rand(2, 6, len(SHAPES), 2)

    def grads(mod):
        mod.zero_grad()
        q = query.clone().requires_grad_()
        mod(q, reference, value, shapes).square().sum().backward()
        return [q.grad] + [p.grad.clone() for p in mod.parameters()]

    runs = [grads(module) for _ in range(3)]
    assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))
    module.deterministic = False
    for a, b in zip(runs[0], grads(module)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)   # float32: only summation order differs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the atomic adds being avoided happen on GPUs only")
def test_deterministic_mode_on_a_gpu_repeats_gradients_bit_for_bit():
    torch.manual_seed(0)
    module = MultiScaleDeformableAttention(64, num_levels=3, num_heads=8, num_points=4, deterministic=True).cuda()
    shapes = [(64, 64), (32, 32), (16, 16)]
    num_value = sum(h * w for h, w in shapes)
    query, value = torch.randn(2, 3000, 64, device="cuda"), torch.randn(2, num_value, 64, device="cuda")
    reference = torch.rand(2, 3000, 3, 2, device="cuda")

    def value_grad():
        v = value.clone().requires_grad_()
        module(query, reference, v, torch.tensor(shapes, device="cuda")).sum().backward()
        return v.grad

    first = value_grad()
    assert all(torch.equal(first, value_grad()) for _ in range(3))


def test_value_length_must_match_spatial_shapes():
    value, shapes, locations, weights = make_inputs()
    with pytest.raises(ValueError, match="add up to"):
        ms_deform_attn(value[:, :-1], shapes, locations, weights)
