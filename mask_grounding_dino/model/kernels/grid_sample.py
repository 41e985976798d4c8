"""Reference multi-scale deformable sampling: one ``F.grid_sample`` per level.

This is the semantic every other backend must match: bilinear interpolation,
zeros outside the feature map, ``align_corners=False`` (a location ``x`` in
[0, 1] lands on pixel coordinate ``x * W - 0.5``). It runs on any device and
exports to ONNX (``GridSample``, opset >= 16), but it loops over levels in
Python and transposes the value to channels-first per level, so it is not the
fastest path on CPU (see ``gather.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ms_deform_attn_grid_sample(value: Tensor, spatial_shapes: Tensor | list[tuple[int, int]],
                               sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Sample every level with ``grid_sample`` and sum with the attention weights.

    Args:
        value: ``[B, Nv, H, D]`` values of all levels, flattened level after level.
        spatial_shapes: ``[L, 2]`` (height, width) of each level (tensor or list).
        sampling_locations: ``[B, Nq, H, L, P, 2]`` (x, y) in [0, 1] of the level's map.
        attention_weights: ``[B, Nq, H, L, P]``.

    Returns:
        ``[B, Nq, H * D]``.
    """
    batch, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in
              (spatial_shapes.tolist() if isinstance(spatial_shapes, Tensor) else spatial_shapes)]
    per_level = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample wants [-1, 1]; fold batch and heads together so each level is one call.
    grids = 2.0 * sampling_locations - 1.0
    # [B, Nq, H, L, P] -> [B*H, 1, Nq, L, P]
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels, points)
    out = None
    for level, (h, w) in enumerate(shapes):
        # [B, h*w, H, D] -> [B*H, D, h, w]
        v = per_level[level].permute(0, 2, 3, 1).reshape(batch * heads, dim, h, w)
        # [B, Nq, H, P, 2] -> [B*H, Nq, P, 2]
        g = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, queries, points, 2)
        sampled = F.grid_sample(v, g.to(v.dtype), mode="bilinear", padding_mode="zeros",
                                align_corners=False)      # [B*H, D, Nq, P]
        # Weighted and summed per level: stacking the levels first copies every sample once more
        # (exported: an Unsqueeze per level and a Concat); the quickstart's float graph runs about
        # 3 % faster in onnxruntime this way.
        term = (sampled * weights[..., level, :].to(sampled.dtype)).sum(-1)     # [B*H, D, Nq]
        out = term if out is None else out + term
    return out.view(batch, heads * dim, queries).transpose(1, 2).contiguous()
