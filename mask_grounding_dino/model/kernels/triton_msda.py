"""Fused multi-scale deformable attention for GPUs, written in Triton.

One program handles ``BLOCK_Q`` queries of one (batch, head): for every level
and point it computes the bilinear corners in registers and accumulates
``weight * value[corner]`` over the ``D`` channels; nothing of size
``B*Nq*H*L*P`` is written to memory. The backward pass recomputes the corners,
writes the location and attention-weight gradients (each owned by exactly one
program) and scatters the value gradient with atomic adds into a float32
buffer. Arithmetic is float32 whatever the input dtype.

Semantic: ``grid_sample`` bilinear, zeros padding, ``align_corners=False``
(pixel coordinate ``x * W - 0.5``), like every backend in this package.

Optional by design: importing this module never fails. ``available()`` says
whether Triton is importable; the kernels are compiled on first use. For tests
on a machine without a GPU, Triton's interpreter runs them on CPU tensors when
``TRITON_INTERPRET=1`` is set before the first call.
"""

import os

import torch
from torch import Tensor

try:  # Triton ships with CUDA builds of torch; CPU builds have none.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None
    tl = None

# Real (not string) annotations: Triton recognises compile-time constants by this class,
# so this module does not use ``from __future__ import annotations``.
constexpr = tl.constexpr if tl is not None else int


def available() -> bool:
    """Whether Triton can be imported (a GPU or the interpreter is still needed to run)."""
    return triton is not None


def interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _msda_forward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
                         num_value, num_query, heads, dim,
                         LEVELS: constexpr, POINTS: constexpr,
                         BLOCK_Q: constexpr, BLOCK_D: constexpr):
    pid_q = tl.program_id(0)
    bh = tl.program_id(1)                       # b * heads + h
    b = (bh // heads).to(tl.int64)
    h = (bh % heads).to(tl.int64)
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_ok = q < num_query
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    # Index of (b, q, h) in loc / attn viewed as [B, Nq, H, L*P].
    bqh = (b * num_query + q.to(tl.int64)) * heads + h
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    for lvl in tl.static_range(LEVELS):
        height = tl.load(shapes_ptr + 2 * lvl)
        width = tl.load(shapes_ptr + 2 * lvl + 1)
        start = tl.load(starts_ptr + lvl)
        for pt in tl.static_range(POINTS):
            sample = bqh * (LEVELS * POINTS) + lvl * POINTS + pt
            lx = tl.load(loc_ptr + 2 * sample, mask=q_ok, other=0.0).to(tl.float32)
            ly = tl.load(loc_ptr + 2 * sample + 1, mask=q_ok, other=0.0).to(tl.float32)
            a = tl.load(attn_ptr + sample, mask=q_ok, other=0.0).to(tl.float32)
            x = lx * width.to(tl.float32) - 0.5
            y = ly * height.to(tl.float32) - 0.5
            # False for NaN, so a NaN location reads nothing.
            near = q_ok & (x > -1.0) & (x < width.to(tl.float32)) & (y > -1.0) & (y < height.to(tl.float32))
            x0f = tl.floor(x)
            y0f = tl.floor(y)
            fx = x - x0f
            fy = y - y0f
            x0 = x0f.to(tl.int64)
            y0 = y0f.to(tl.int64)
            for corner in tl.static_range(4):
                dx = corner % 2
                dy = corner // 2
                xi = x0 + dx
                yi = y0 + dy
                ok = near & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                wx = fx if dx == 1 else 1.0 - fx
                wy = fy if dy == 1 else 1.0 - fy
                w = tl.where(ok, wx * wy * a, 0.0)
                row = ((b * num_value + start + yi * width + xi) * heads + h) * dim
                row = tl.where(ok, row, 0)
                v = tl.load(value_ptr + row[:, None] + d[None, :],
                            mask=ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
                acc += w[:, None] * v
    out_off = bqh[:, None] * dim + d[None, :]
    tl.store(out_ptr + out_off, acc, mask=q_ok[:, None] & d_ok[None, :])


def _msda_backward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, grad_out_ptr,
                          grad_value_ptr, grad_loc_ptr, grad_attn_ptr,
                          num_value, num_query, heads, dim,
                          LEVELS: constexpr, POINTS: constexpr,
                          BLOCK_Q: constexpr, BLOCK_D: constexpr):
    pid_q = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // heads).to(tl.int64)
    h = (bh % heads).to(tl.int64)
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_ok = q < num_query
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    bqh = (b * num_query + q.to(tl.int64)) * heads + h
    tile_ok = q_ok[:, None] & d_ok[None, :]
    go = tl.load(grad_out_ptr + bqh[:, None] * dim + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    for lvl in tl.static_range(LEVELS):
        height = tl.load(shapes_ptr + 2 * lvl)
        width = tl.load(shapes_ptr + 2 * lvl + 1)
        start = tl.load(starts_ptr + lvl)
        for pt in tl.static_range(POINTS):
            sample = bqh * (LEVELS * POINTS) + lvl * POINTS + pt
            lx = tl.load(loc_ptr + 2 * sample, mask=q_ok, other=0.0).to(tl.float32)
            ly = tl.load(loc_ptr + 2 * sample + 1, mask=q_ok, other=0.0).to(tl.float32)
            a = tl.load(attn_ptr + sample, mask=q_ok, other=0.0).to(tl.float32)
            x = lx * width.to(tl.float32) - 0.5
            y = ly * height.to(tl.float32) - 0.5
            near = q_ok & (x > -1.0) & (x < width.to(tl.float32)) & (y > -1.0) & (y < height.to(tl.float32))
            x0f = tl.floor(x)
            y0f = tl.floor(y)
            fx = x - x0f
            fy = y - y0f
            x0 = x0f.to(tl.int64)
            y0 = y0f.to(tl.int64)
            grad_a = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            grad_x = tl.zeros((BLOCK_Q,), dtype=tl.float32)     # d out / d pixel x, before * a
            grad_y = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            for corner in tl.static_range(4):
                dx = corner % 2
                dy = corner // 2
                xi = x0 + dx
                yi = y0 + dy
                ok = near & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                wx = fx if dx == 1 else 1.0 - fx
                wy = fy if dy == 1 else 1.0 - fy
                row = ((b * num_value + start + yi * width + xi) * heads + h) * dim
                row = tl.where(ok, row, 0)
                mask = ok[:, None] & d_ok[None, :]
                v = tl.load(value_ptr + row[:, None] + d[None, :], mask=mask, other=0.0).to(tl.float32)
                g_dot_v = tl.sum(go * v, axis=1)                   # [BLOCK_Q]
                grad_a += wx * wy * g_dot_v
                # d(wx)/dx is +1 for the right corner and -1 for the left one (same for y).
                sign_x = 1.0 if dx == 1 else -1.0
                sign_y = 1.0 if dy == 1 else -1.0
                grad_x += sign_x * wy * g_dot_v
                grad_y += sign_y * wx * g_dot_v
                w = tl.where(ok, wx * wy * a, 0.0)
                tl.atomic_add(grad_value_ptr + row[:, None] + d[None, :], w[:, None] * go, mask=mask)
            # A point with no neighbour inside the map has no gradient (grid_sample's convention).
            grad_x = tl.where(near, grad_x, 0.0)
            grad_y = tl.where(near, grad_y, 0.0)
            tl.store(grad_attn_ptr + sample, tl.where(near, grad_a, 0.0), mask=q_ok)
            tl.store(grad_loc_ptr + 2 * sample, grad_x * a * width.to(tl.float32), mask=q_ok)
            tl.store(grad_loc_ptr + 2 * sample + 1, grad_y * a * height.to(tl.float32), mask=q_ok)


_KERNELS: dict = {}


def _kernels() -> tuple:
    """(forward, backward) jitted for the current mode (compiled or interpreted)."""
    mode = interpreting()
    if mode not in _KERNELS:
        # triton.jit reads TRITON_INTERPRET when it wraps a function, so wrap lazily.
        _KERNELS[mode] = (triton.jit(_msda_forward_kernel), triton.jit(_msda_backward_kernel))
    return _KERNELS[mode]


def _launch_config(num_query: int, dim: int) -> tuple[int, int]:
    block_d = triton.next_power_of_2(max(dim, 1))
    # Keep a tile at about 2k values: enough work per program, registers to spare.
    block_q = max(1, min(64, 2048 // block_d, triton.next_power_of_2(num_query)))
    return block_q, block_d


class _TritonMSDA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
        batch, num_value, heads, dim = value.shape
        _, num_query, _, levels, points, _ = sampling_locations.shape
        value_c = value.contiguous()
        loc_c = sampling_locations.contiguous()
        attn_c = attention_weights.contiguous()
        shapes = spatial_shapes.to(torch.int64).contiguous()
        starts = level_start_index.to(torch.int64).contiguous()
        out = torch.empty(batch, num_query, heads, dim, device=value.device, dtype=torch.float32)
        block_q, block_d = _launch_config(num_query, dim)
        grid = (triton.cdiv(num_query, block_q), batch * heads)
        forward_kernel, _ = _kernels()
        forward_kernel[grid](value_c, shapes, starts, loc_c, attn_c, out,
                             num_value, num_query, heads, dim,
                             LEVELS=levels, POINTS=points, BLOCK_Q=block_q, BLOCK_D=block_d)
        ctx.save_for_backward(value_c, shapes, starts, loc_c, attn_c)
        return out.view(batch, num_query, heads * dim).to(value.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        value, shapes, starts, loc, attn = ctx.saved_tensors
        batch, num_value, heads, dim = value.shape
        _, num_query, _, levels, points, _ = loc.shape
        grad_out = grad_out.contiguous()
        grad_value = torch.zeros(value.shape, device=value.device, dtype=torch.float32)
        grad_loc = torch.empty(loc.shape, device=loc.device, dtype=torch.float32)
        grad_attn = torch.empty(attn.shape, device=attn.device, dtype=torch.float32)
        block_q, block_d = _launch_config(num_query, dim)
        grid = (triton.cdiv(num_query, block_q), batch * heads)
        _, backward_kernel = _kernels()
        backward_kernel[grid](value, shapes, starts, loc, attn, grad_out,
                              grad_value, grad_loc, grad_attn,
                              num_value, num_query, heads, dim,
                              LEVELS=levels, POINTS=points, BLOCK_Q=block_q, BLOCK_D=block_d)
        return (grad_value.to(value.dtype), None, None, grad_loc.to(loc.dtype),
                grad_attn.to(attn.dtype))


def ms_deform_attn_triton(value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor,
                          attention_weights: Tensor, level_start_index: Tensor) -> Tensor:
    """Fused deformable sampling (forward and backward) on a GPU, or on CPU when interpreting.

    Args:
        value: ``[B, Nv, H, D]``.
        spatial_shapes: ``[L, 2]`` long tensor (height, width) on the value's device.
        sampling_locations: ``[B, Nq, H, L, P, 2]`` in [0, 1].
        attention_weights: ``[B, Nq, H, L, P]``.
        level_start_index: ``[L]`` long tensor on the value's device.

    Returns:
        ``[B, Nq, H * D]`` in the value's dtype (float32 arithmetic inside).
    """
    if triton is None:
        raise RuntimeError("Triton is not installed; use the 'gather' or 'grid_sample' backend")
    return _TritonMSDA.apply(value, spatial_shapes, level_start_index, sampling_locations,
                             attention_weights)
