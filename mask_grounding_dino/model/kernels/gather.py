"""Multi-scale deformable sampling as an explicit bilinear gather (pure PyTorch).

Each sampling point reads its 4 neighbouring pixels; the bilinear weight of a
neighbour times the point's attention weight is a "tap". The output of one
(batch, query, head) is the weighted sum of its ``4 * L * P`` taps, i.e. an
``embedding_bag`` over the rows of the value seen as a table of ``D``-channel
rows. Compared with ``grid_sample`` this

- needs no per-level sampling loop and no channels-first copy of the value
  (each table row is ``D`` contiguous channels);
- exports to plain ONNX ops (``Floor``, ``Gather``, ``Mul``, ``ReduceSum``) that
  every runtime has, with ``reduce="index_select"``.

Zero padding without masks: every level is copied into a map with one zero
row/column before and two after, and the pixel coordinate is clamped to
``[-1, W]``. A point outside ``(-1, W)`` then reads zeros only, which is exactly
``grid_sample``'s ``padding_mode="zeros"`` (its gradient there is zero too), and
no tap needs a validity mask.

The semantic is ``grid_sample``'s, ``align_corners=False``: a location ``x`` in
[0, 1] is the pixel coordinate ``x * W - 0.5``.

Speed (one 2-core CPU thread, an 800x1333 encoder layer, ~22k queries): the
gather itself is ~30 ms; computing the 11M taps costs most. So the taps are laid
out ``[..., corner or axis, L*P]`` (per-level constants broadcast along the
contiguous last axis, which vectorises) and row indices are int32.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tracing import capturing_graph
from . import gather_autograd as _fast

Reduce = Literal["embedding_bag", "index_select"]

#: Zero border of each level's map in the table: before, after (see module docstring).
PAD_BEFORE, PAD_AFTER = 1, 2


def level_start_index_of(spatial_shapes: Tensor) -> Tensor:
    """``[L]`` offsets of each level in the flattened value, from ``[L, 2]`` shapes."""
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


def as_shape_list(spatial_shapes: Tensor | Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """``[(h, w), ...]`` as Python ints (a constant when traced for export)."""
    rows = spatial_shapes.tolist() if isinstance(spatial_shapes, Tensor) else spatial_shapes
    return [(int(h), int(w)) for h, w in rows]


def padded_value_table(value: Tensor, shapes: list[tuple[int, int]]) -> Tensor:
    """Copy each level into a zero-bordered map.

    Args:
        value: ``[B, Nv, H, D]``, levels flattened one after the other.
        shapes: ``[(h, w), ...]`` per level.

    Returns:
        ``[B, sum((h + 3) * (w + 3)), H, D]``.
    """
    batch, _, heads, dim = value.shape
    pad = PAD_BEFORE + PAD_AFTER
    padded = []
    for level, (h, w) in zip(value.split([h * w for h, w in shapes], dim=1), shapes):
        grid = level.reshape(batch, h, w, heads * dim)
        # F.pad pads the last dims first: channels (none), width, height.
        grid = F.pad(grid, (0, 0, PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER))
        padded.append(grid.reshape(batch, (h + pad) * (w + pad), heads, dim))
    return torch.cat(padded, dim=1)


def bilinear_taps(batch: int, heads: int, shapes: list[tuple[int, int]],
                  sampling_locations: Tensor, attention_weights: Tensor,
                  index_dtype: torch.dtype = torch.int32) -> tuple[Tensor, Tensor]:
    """Row indices into the padded value table and the weight of each tap.

    Args:
        batch, heads: ``B`` and ``H``.
        shapes: ``[(h, w), ...]`` per level (unpadded).
        sampling_locations: ``[B, Nq, H, L, P, 2]`` (x, y) in [0, 1].
        attention_weights: ``[B, Nq, H, L, P]``.
        index_dtype: ``torch.int32`` or ``torch.int64`` for the rows.

    Returns:
        ``rows [B, Nq, H, 4, L*P]`` into the table ``padded_value_table(...)`` (``[B, Np, H, D]``)
        seen as ``[B * Np * H, D]``, and ``weights [B, Nq, H, 4, L*P]`` (dtype of the locations);
        corners (x0,y0), (x1,y0), (x0,y1), (x1,y1).
    """
    points = sampling_locations.shape[4]
    dtype, device = sampling_locations.dtype, sampling_locations.device
    pad = PAD_BEFORE + PAD_AFTER
    padded_w = [w + pad for _, w in shapes]
    starts, total = [], 0
    for h, w in shapes:
        starts.append(total)
        total += (h + pad) * (w + pad)

    def per_point(values: list) -> Tensor:                  # [L] -> [L*P] constant
        return torch.tensor(values, device=device).repeat_interleave(points)

    # (x, y) sizes of each level, [2, L*P].
    size_xy = torch.stack([per_point([w for _, w in shapes]), per_point([h for h, _ in shapes])])
    # [B, Nq, H, L, P, 2] -> [B, Nq, H, 2, L*P]: contiguous so the broadcasts vectorise.
    loc = sampling_locations.flatten(3, 4).transpose(-1, -2).contiguous()
    # Pixel coordinate in the padded map: x * W - 0.5 + PAD_BEFORE, clamped to [0, W + 1].
    pix = torch.addcmul(torch.tensor(PAD_BEFORE - 0.5, dtype=dtype, device=device),
                        loc, size_xy.to(dtype))
    # nan_to_num: a NaN location would otherwise become an out-of-table index.
    pix = torch.nan_to_num(pix, nan=0.0).clamp(torch.zeros_like(size_xy, dtype=dtype),
                                               (size_xy + 1).to(dtype))
    idx = pix.to(index_dtype)                               # floor, as pix >= 0
    frac = pix - torch.floor(pix)                           # (torch.frac has no ONNX export)

    # Row of (b, padded pixel, h): (b * Np + start + y * Wp + x) * H + h.
    coef = torch.stack([torch.full_like(per_point(padded_w), heads), per_point(padded_w) * heads])
    b_off = torch.arange(batch, device=device).view(-1, 1, 1, 1) * (total * heads)
    h_off = torch.arange(heads, device=device).view(1, 1, -1, 1)
    base = (b_off + h_off + per_point(starts) * heads).to(index_dtype)           # [B, 1, H, LP]
    scaled = idx * coef.to(index_dtype)                                         # [B, Nq, H, 2, LP]
    row = scaled[..., 0, :] + scaled[..., 1, :] + base                          # [B, Nq, H, LP]
    step_y = per_point(padded_w) * heads
    corner = torch.stack([torch.zeros_like(step_y), torch.full_like(step_y, heads),
                          step_y, step_y + heads]).to(index_dtype)              # [4, LP]
    rows = row.unsqueeze(-2) + corner

    attn = attention_weights.flatten(3, 4).to(dtype)
    wx1 = frac[..., 0, :]
    wy1 = frac[..., 1, :] * attn
    wx0, wy0 = 1.0 - wx1, attn - wy1
    weights = torch.stack([wx0 * wy0, wx1 * wy0, wx0 * wy1, wx1 * wy1], dim=-2)
    return rows, weights


def ms_deform_attn_gather(value: Tensor, spatial_shapes: Tensor | Sequence[Sequence[int]],
                          sampling_locations: Tensor, attention_weights: Tensor,
                          reduce: Reduce = "embedding_bag") -> Tensor:
    """Deformable sampling by explicit bilinear taps.

    Args:
        value: ``[B, Nv, H, D]``.
        spatial_shapes: ``[L, 2]`` (height, width), a long tensor or a list of pairs.
        sampling_locations: ``[B, Nq, H, L, P, 2]`` in [0, 1].
        attention_weights: ``[B, Nq, H, L, P]``.
        reduce: ``"embedding_bag"`` (fused gather + weighted sum, fastest in eager mode) or
            ``"index_select"`` (``Gather`` + ``Mul`` + ``ReduceSum``, one corner at a time to
            bound memory; what ONNX export uses).

    Returns:
        ``[B, Nq, H * D]``.
    """
    batch, _, heads, dim = value.shape
    queries = sampling_locations.shape[1]
    shapes = as_shape_list(spatial_shapes)
    eager = reduce == "embedding_bag" and not capturing_graph()
    if eager and _fast.supports(value, sampling_locations, attention_weights):
        # Eager CPU: the same taps with fewer memory passes, and a hand-written backward.
        return _fast.gather_sample(value, shapes, sampling_locations, attention_weights)
    table = padded_value_table(value, shapes)
    # int32 rows halve the traffic of the tap arithmetic; int64 only for huge tables.
    index_dtype = torch.int32 if batch * table.shape[1] * heads < 2**31 - 1 else torch.int64
    rows, weights = bilinear_taps(batch, heads, shapes, sampling_locations, attention_weights,
                                  index_dtype=index_dtype)
    table = table.reshape(-1, dim)
    weights = weights.to(value.dtype)
    if reduce == "embedding_bag":
        taps = rows.shape[-2] * rows.shape[-1]
        out = F.embedding_bag(rows.reshape(-1, taps), table, mode="sum",
                              per_sample_weights=weights.reshape(-1, taps))
    elif reduce == "index_select":
        out = None
        per_corner = rows.shape[-1]                                  # L * P
        for c in range(4):
            picked = table.index_select(0, rows[..., c, :].reshape(-1)).view(-1, per_corner, dim)
            term = (picked * weights[..., c, :].reshape(-1, per_corner, 1)).sum(1)
            out = term if out is None else out + term
    else:
        raise ValueError(f"reduce must be 'embedding_bag' or 'index_select', not {reduce!r}")
    return out.view(batch, queries, heads * dim)
