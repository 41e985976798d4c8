"""Eager-mode gather sampling with a hand-written backward (the CPU path, training included).

Forward: the bilinear taps of ``gather.py`` and one ``embedding_bag`` over a
zero-bordered value table. Backward, from the upstream gradient ``g`` of each
(batch, head, query) "bag":

- per-tap dot products ``c = <g[bag], table[row]>``: one ``sampled_addmm`` (a CSR
  matrix whose rows are the bags, so its pattern needs no sorting);
- attention-weight and location gradients: a few element-wise ops on ``c`` and the
  saved bilinear fractions (the exact derivatives of the bilinear weights);
- value gradient: the transpose of the sampling matrix times ``g``. The matrix is CSR
  by bags, so its transpose is CSC for free, and SciPy's compiled ``csc @ dense`` does
  the scatter in one pass (~20 ms for 3M taps x 16 channels) where ``embedding_bag``'s
  own backward sorts every tap and ``index_put_`` / ``grid_sample``'s backward scatter
  element by element (5-10x slower on CPU).

Layout, chosen for memory locality on CPU: the table is head-major
(``[B, H, padded pixels, D]``, so a head's neighbouring pixels are neighbouring rows)
and bags run (batch, head, query), so consecutive bags read the same head's map near
consecutive query positions. Per-point quantities are kept as flat planes (x / y,
corner) so most element-wise passes vectorise over one long axis.

The semantic is ``grid_sample``'s (bilinear, zeros outside, ``align_corners=False``),
with its gradient: zero for a coordinate wholly outside ``(-1, W)``. At exactly
integer pixel coordinates (a kink of bilinear interpolation) implementations pick one
side or the other depending on float rounding of the coordinate.

Only for float32 / float64 CPU tensors while not exporting; ``gather.py`` falls
back to plain autograd otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

PAD_BEFORE, PAD_AFTER = 1, 2     # as gather.py: zero border of each level in the table
PAD = PAD_BEFORE + PAD_AFTER
#: Row indices are int32 (half the memory traffic) while table rows and taps stay below this.
INT32_LIMIT = 2**31 - 1


def _per_point(values: list[float], points: int, dtype, device) -> Tensor:
    """[L] -> [L*P] (each level's value repeated for its points)."""
    return torch.tensor(values, dtype=dtype, device=device).repeat_interleave(points)


def table_size(shapes: list[tuple[int, int]]) -> int:
    """Padded pixels of all levels (rows of one head's map in the table)."""
    return sum((h + PAD) * (w + PAD) for h, w in shapes)


#: Sampling points per chunk without gradients: each chunk's tap tensors (a few MB) stay in
#: cache between the element-wise passes, and below glibc's mmap threshold so their memory is
#: reused instead of being page-faulted in afresh on every call (~2 us per 4 kB page).
#: Swin-T encoder layer at 800x1333 (2.8M points), 1 thread: 120 ms vs 200 ms in one piece.
CHUNK_POINTS = 1 << 17
#: With gradients the backward's per-chunk passes over the whole table cost more than the
#: locality gains (224 px batch-8 encoder layer, 0.8M points: 101 ms one piece vs 110-126 ms).
CHUNK_POINTS_GRAD = 1 << 21


class Levels:
    """Per-(level, point) constants of one call, ``[L*P]`` each, and the table geometry."""

    def __init__(self, shapes: list[tuple[int, int]], points: int, batch: int, heads: int, dtype,
                 index_dtype, device):
        lp = len(shapes) * points
        self.lp, self.heads = lp, heads
        self.size = torch.stack([_per_point([w for _, w in shapes], points, dtype, device),
                                 _per_point([h for h, _ in shapes], points, dtype, device)]).view(2, 1, lp)
        self.high = self.size + 1
        self.step_y = _per_point([w + PAD for _, w in shapes], points, torch.int64, device).to(index_dtype)
        self.corner = torch.stack([torch.zeros_like(self.step_y), torch.ones_like(self.step_y), self.step_y,
                                   self.step_y + 1])                                                   # [4, LP]
        starts, total = [], 0
        for h, w in shapes:
            starts.append(total)
            total += (h + PAD) * (w + PAD)
        self.table_rows = batch * heads * total
        # Row of (b, h, padded pixel y*Wp + x): (b * H + h) * Np + start + y * Wp + x.
        self.base = (torch.arange(batch * heads, device=device).view(-1, 1, 1) * total
                     + _per_point(starts, points, torch.int64, device).view(1, 1, -1)).to(index_dtype)
        self.index_dtype = index_dtype


class Taps:
    """Bilinear taps of the sampling points of a range of queries; bags in (batch, head, query) order.

    rows ``[4, bags, L*P]``: int rows of the table ``[B * H * Np, D]`` per corner (x0,y0),
    (x1,y0), (x0,y1), (x1,y1); weights ``[4, bags, L*P]``: attention weight x bilinear
    weight. For the backward: frac ``[2, bags, L*P]`` (x and y planes) fractional pixel
    coordinates, unclamped ``[2, bags, L*P]`` bool (the coordinate was inside the clamp
    range), attn ``[bags, L*P]``.
    """

    def __init__(self, levels: Levels, locations: Tensor, attention: Tensor):
        batch, queries, heads = locations.shape[:3]
        lp = levels.lp
        bags = batch * heads * queries
        dtype, device = locations.dtype, locations.device
        self.bags = bags
        # Padded pixel coordinate x * W - 0.5 + PAD_BEFORE as x / y planes [2, (B, H, Nq), LP];
        # the bag reordering rides on this first pass (a strided read).
        raw = torch.empty((2, batch, heads, queries, lp), dtype=dtype, device=device)
        torch.addcmul(torch.tensor(PAD_BEFORE - 0.5, dtype=dtype, device=device),
                      locations.reshape(batch, queries, heads, lp, 2).permute(4, 0, 2, 1, 3),
                      levels.size.view(2, 1, 1, 1, lp), out=raw)
        raw = raw.view(2, bags, lp)
        # Clamp to [0, W + 1] (a point further out reads zeros only); NaN -> 0 (not an index).
        pix = torch.clamp(raw, min=0.0).nan_to_num_(nan=0.0)
        pix = torch.minimum(pix, levels.high, out=pix)
        # Where the clamp acted (or at NaN) the location gradient is zero, as grid_sample's.
        self.unclamped = pix == raw
        del raw
        floor = pix.floor()
        self.frac = pix.sub_(floor)
        idx = floor.to(levels.index_dtype)
        del floor
        rows = torch.empty((4, bags, lp), dtype=levels.index_dtype, device=device)
        torch.mul(idx[1], levels.step_y, out=rows[0]).add_(idx[0])
        rows[0].view(batch * heads, queries, lp).add_(levels.base)
        torch.add(rows[0], 1, out=rows[1])
        torch.add(rows[0], levels.step_y, out=rows[2])
        torch.add(rows[2], 1, out=rows[3])
        self.rows = rows

        # attn in bag order [(B, H, Nq), LP] (the second strided read).
        self.attn = attention.reshape(batch, queries, heads, lp).transpose(1, 2).reshape(bags, lp).to(dtype)
        fx, fy = self.frac[0], self.frac[1]
        wy1 = torch.mul(fy, self.attn)
        wy0 = torch.sub(self.attn, wy1)
        wx0 = torch.sub(1.0, fx)
        weights = torch.empty((4, bags, lp), dtype=dtype, device=device)
        torch.mul(wx0, wy0, out=weights[0])
        torch.mul(fx, wy0, out=weights[1])
        torch.mul(wx0, wy1, out=weights[2])
        torch.mul(fx, wy1, out=weights[3])
        self.weights = weights

    def saved(self) -> list[Tensor]:
        return [self.rows, self.weights, self.frac, self.unclamped, self.attn]


def value_table(value: Tensor, shapes: list[tuple[int, int]]) -> Tensor:
    """``[B, Nv, H, D]`` -> ``[B * H * Np, D]``: each head's levels in zero-bordered maps (one copy)."""
    batch, _, heads, dim = value.shape
    table = value.new_zeros((batch, heads, table_size(shapes), dim))
    start = 0
    for level, (h, w) in zip(value.split([h * w for h, w in shapes], dim=1), shapes):
        grid = table[:, :, start:start + (h + PAD) * (w + PAD)].view(batch, heads, h + PAD, w + PAD, dim)
        grid[:, :, PAD_BEFORE:PAD_BEFORE + h, PAD_BEFORE:PAD_BEFORE + w] = \
            level.view(batch, h, w, heads, dim).permute(0, 3, 1, 2, 4)
        start += (h + PAD) * (w + PAD)
    return table.view(-1, dim)


def unpad_table(table_grad: Tensor, shapes: list[tuple[int, int]], batch: int, heads: int) -> Tensor:
    """Inverse of :func:`value_table` for gradients: ``[B * H * Np, D]`` -> ``[B, Nv, H, D]``."""
    dim = table_grad.shape[-1]
    flat = table_grad.view(batch, heads, -1, dim)
    out = table_grad.new_empty((batch, sum(h * w for h, w in shapes), heads, dim))
    start = begin = 0
    for h, w in shapes:
        grid = flat[:, :, start:start + (h + PAD) * (w + PAD)].view(batch, heads, h + PAD, w + PAD, dim)
        out[:, begin:begin + h * w].view(batch, h, w, heads, dim).copy_(
            grid[:, :, PAD_BEFORE:PAD_BEFORE + h, PAD_BEFORE:PAD_BEFORE + w].permute(0, 2, 3, 1, 4))
        start += (h + PAD) * (w + PAD)
        begin += h * w
    return out


def _tap_dots(rows: Tensor, table: Tensor, grad: Tensor) -> Tensor:
    """``<grad[bag], table[rows[bag, t]]>`` for every tap of ``rows [bags, T]``: ``[bags, T]``."""
    bags, taps = rows.shape
    crow = torch.arange(0, bags * taps + 1, taps, dtype=rows.dtype, device=rows.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # "sparse CSR support is in beta"
        # out=pattern avoids copying the index arrays. Zero values: beta=0 still multiplies them
        # (uninitialised memory could hold NaN).
        pattern = torch.sparse_csr_tensor(crow, rows.reshape(-1), torch.zeros(bags * taps, dtype=table.dtype),
                                          size=(bags, table.shape[0]), check_invariants=False)
        torch.sparse.sampled_addmm(pattern, grad, table.t(), beta=0.0, out=pattern)
    return pattern.values().view(bags, taps)


def _scatter_to_table(rows: Tensor, weights: Tensor, grad: Tensor, table_rows: int) -> Tensor:
    """``S^T grad`` where ``S [bags, table_rows]`` holds the tap ``weights`` at ``rows``
    (both ``[bags, T]``): ``[table_rows, D]``."""
    import scipy.sparse as sp

    bags, taps = rows.shape
    index_np = rows.reshape(-1).numpy()
    indptr = np.arange(0, bags * taps + 1, taps, dtype=index_np.dtype)
    matrix = sp.csr_matrix((weights.reshape(-1).numpy(), index_np, indptr), shape=(bags, table_rows), copy=False)
    out = matrix.T @ grad.numpy()                      # CSC x dense: one compiled scatter pass
    return torch.from_numpy(np.ascontiguousarray(out))


def _query_step(batch: int, heads: int, queries: int, lp: int, points: int) -> int:
    """Queries per chunk of about ``points`` sampling points."""
    return max(1, min(queries, points // max(batch * heads * lp, 1)))


class GatherSampling(torch.autograd.Function):
    """``(value [B,Nv,H,D], locations [B,Nq,H,L,P,2], attention [B,Nq,H,L,P]) -> [B,Nq,H*D]``,
    computed in chunks of queries."""

    @staticmethod
    def forward(ctx, value: Tensor, locations: Tensor, attention: Tensor, shapes: list[tuple[int, int]]
                ) -> Tensor:
        batch, _, heads, dim = value.shape
        queries, points = locations.shape[1], locations.shape[4]
        table = value_table(value, shapes)
        index_dtype = torch.int32 if max(table.shape[0], 4 * locations.numel()) < INT32_LIMIT else torch.int64
        levels = Levels(shapes, points, batch, heads, locations.dtype, index_dtype, value.device)
        keep = any(ctx.needs_input_grad[:3])
        out = value.new_empty((batch, queries, heads, dim))
        step = _query_step(batch, heads, queries, levels.lp, CHUNK_POINTS_GRAD if keep else CHUNK_POINTS)
        saved = []
        for start in range(0, queries, step):
            stop = min(queries, start + step)
            taps = Taps(levels, locations[:, start:stop], attention[:, start:stop])
            # One bag per (corner, b, h, q): the corner planes stay contiguous; then sum the corners.
            sampled = torch.nn.functional.embedding_bag(taps.rows.view(4 * taps.bags, -1), table, mode="sum",
                                                        per_sample_weights=taps.weights.view(4 * taps.bags, -1))
            sampled = sampled.view(4, batch, heads, stop - start, dim).sum(0)
            # Bags (b, h, q) -> [B, q, H, D].
            out[:, start:stop] = sampled.transpose(1, 2)
            if keep:
                saved += taps.saved()
        if keep:
            ctx.shapes, ctx.step, ctx.levels = shapes, step, levels
            ctx.save_for_backward(table, *saved)
        return out.view(batch, queries, heads * dim)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        table, *saved = ctx.saved_tensors
        levels: Levels = ctx.levels
        need_value, need_loc, need_attn = ctx.needs_input_grad[:3]
        batch, queries, _ = grad_out.shape
        heads, lp, step = levels.heads, levels.lp, ctx.step
        num_levels = len(ctx.shapes)
        dim = table.shape[1]
        grad_out = grad_out.view(batch, queries, heads, dim)
        grad_loc = table.new_empty((batch, queries, heads, num_levels, lp // num_levels, 2)) if need_loc else None
        grad_attn = table.new_empty((batch, queries, heads, num_levels, lp // num_levels)) if need_attn else None
        table_grad = None
        for i, start in enumerate(range(0, queries, step)):
            stop = min(queries, start + step)
            rows, weights, frac, unclamped, attn = saved[5 * i:5 * i + 5]
            n = stop - start
            bags = batch * heads * n
            grad = grad_out[:, start:stop].transpose(1, 2).to(table.dtype).reshape(bags, dim)

            def to_points(t: Tensor) -> Tensor:         # [(B, H, n), LP] -> [B, n, H, L, P]
                return t.view(batch, heads, n, num_levels, lp // num_levels).transpose(1, 2)

            if need_loc or need_attn:
                # c[k]: upstream gradient . value at corner k, (x0,y0) (x1,y0) (x0,y1) (x1,y1).
                c = [_tap_dots(rows[k], table, grad) for k in range(4)]
                fx, fy = frac[0], frac[1]
                col_x0 = torch.lerp(c[0], c[2], fy)              # bilinear in y along column x0
                col_x1 = torch.lerp(c[1], c[3], fy)
                if need_attn:
                    grad_attn[:, start:stop] = to_points(torch.lerp(col_x0, col_x1, fx))
                if need_loc:
                    row_y0 = torch.lerp(c[0], c[1], fx)          # bilinear in x along row y0
                    row_y1 = torch.lerp(c[2], c[3], fx)
                    planes = torch.stack([col_x1.sub_(col_x0), row_y1.sub_(row_y0)])    # [2, bags, LP]
                    planes.mul_(attn).mul_(levels.size)           # d pixel / d location = (W, H)
                    planes.mul_(unclamped)                        # zero where clamped (reads zeros only)
                    grad_loc[:, start:stop] = planes.view(2, batch, heads, n, num_levels,
                                                          lp // num_levels).permute(1, 3, 2, 4, 5, 0)
            if need_value:
                part = _scatter_to_table(rows.view(4 * bags, lp), weights.view(4 * bags, lp),
                                         grad.repeat(4, 1), levels.table_rows)
                table_grad = part if table_grad is None else table_grad.add_(part)
        grad_value = unpad_table(table_grad, ctx.shapes, batch, heads) if need_value else None
        return grad_value, grad_loc, grad_attn, None


def supports(value: Tensor, locations: Tensor, attention: Tensor) -> bool:
    """Whether :class:`GatherSampling` handles these tensors (CPU, one float32/float64 dtype)."""
    return (value.dtype in (torch.float32, torch.float64) and locations.dtype == attention.dtype == value.dtype
            and all(t.device.type == "cpu" for t in (value, locations, attention)))


def gather_sample(value: Tensor, shapes: list[tuple[int, int]], locations: Tensor, attention: Tensor) -> Tensor:
    """Eager deformable sampling, ``[B, Nq, H * D]``; differentiable (hand-written backward)."""
    return GatherSampling.apply(value, locations, attention, shapes)
