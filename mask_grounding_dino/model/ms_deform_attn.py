"""Multi-scale deformable attention (Deformable DETR), as used by Grounding DINO.

Each query looks at ``P`` points around its reference point on each of ``L``
feature levels, per head; the offsets and the attention weights of the points
are linear functions of the query. Parameter names and initialisation are the
official ones (``sampling_offsets``, ``attention_weights``, ``value_proj``,
``output_proj``), so official, TAO and Hugging Face checkpoints load by name.

The sampling step ``ms_deform_attn`` has several backends (``model/kernels``):

- ``gather``: pure PyTorch, explicit bilinear taps (``embedding_bag`` in eager mode,
  ``Gather`` ops when exporting). The fastest CPU inference path and the default export.
- ``grid_sample``: pure PyTorch reference (``F.grid_sample`` per level).
- ``triton``: fused GPU kernel (forward and backward); optional.
- ``auto`` (default): while exporting (ONNX/TorchScript tracing, torch.export),
  ``gather`` or what ``export_backend(...)`` selects; ``triton`` for CUDA tensors
  when Triton works; otherwise ``gather`` (on CPU with a hand-written backward, 3x
  faster than ``grid_sample``'s for training), or ``grid_sample`` when gradients are
  needed on other devices / dtypes. The environment variable ``MGDINO_MSDA_BACKEND``
  overrides ``auto`` outside exports.

Deterministic mode (``deterministic=True``, the spec's ``model.precise_msda``): on GPUs the
Triton kernel and ``grid_sample`` add value gradients with atomic adds, whose order varies
from run to run; when gradients are needed ``auto`` then takes ``gather`` on every device,
whose backward adds none (``embedding_bag`` in sum mode on GPUs, the hand-written CPU one), so
repeated runs get identical gradients. The CPU backends are deterministic anyway.

No backend needs a compiled extension, so nothing fails with "``_C`` is not
defined": without Triton (or when its kernel cannot be compiled on this GPU)
the pure PyTorch path runs, after one warning.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from .kernels import gather as _gather
from .kernels import gather_autograd as _fast
from .kernels import triton_msda as _triton
from .kernels.grid_sample import ms_deform_attn_grid_sample
from .tracing import exporting

Backend = Literal["auto", "gather", "grid_sample", "triton"]
BACKENDS = ("auto", "gather", "grid_sample", "triton")
#: Environment variable that overrides ``backend="auto"`` (e.g. for benchmarks).
BACKEND_ENV = "MGDINO_MSDA_BACKEND"

_triton_failed: str | None = None   # why the Triton kernel was given up (set once)
_export_choice: str = "gather"      # what "auto" (and "triton") become while exporting


@contextlib.contextmanager
def export_backend(name: str):
    """Formulation written into an exported graph by modules whose backend is "auto".

    ``"gather"``: plain ``Gather``/``Mul``/``ReduceSum`` ops (any runtime);
    ``"grid_sample"``: ONNX ``GridSample`` (opset >= 16; faster in onnxruntime on CPU).
    """
    global _export_choice
    if name not in ("gather", "grid_sample"):
        raise ValueError(f"export formulation must be 'gather' or 'grid_sample', not {name!r}")
    previous, _export_choice = _export_choice, name
    try:
        yield
    finally:
        _export_choice = previous


def resolve_backend(backend: str, value: Tensor, needs_grad: bool = False, deterministic: bool = False) -> str:
    """The concrete backend ``ms_deform_attn`` will use for ``value`` (and gradients or not);
    ``deterministic``: no atomic gradient adds (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown deformable-attention backend {backend!r}; "
                         f"choose one of {', '.join(BACKENDS)}")
    if exporting():
        return _export_choice if backend in ("auto", "triton") else backend
    if backend == "auto":
        if deterministic and needs_grad:
            return "gather"
        forced = os.environ.get(BACKEND_ENV, "").strip()
        if forced and forced != "auto":
            if forced not in BACKENDS:
                raise ValueError(f"{BACKEND_ENV}={forced!r} is not a deformable-attention "
                                 f"backend; choose one of {', '.join(BACKENDS)}")
            return forced
        if value.is_cuda and _triton.available() and _triton_failed is None:
            return "triton"
        # The gather path's hand-written backward (kernels/gather_autograd.py) covers CPU
        # float32/float64. One 224x224 encoder layer, batch 8, 1 thread: forward 0.03 s (gather)
        # vs 0.09-0.13 s (grid_sample); forward + backward 0.09-0.11 s vs 0.31 s.
        if needs_grad and not _fast.supports(value, value, value):
            return "grid_sample"
        return "gather"
    return backend


def ms_deform_attn(value: Tensor, spatial_shapes: Tensor | Sequence[Sequence[int]],
                   sampling_locations: Tensor, attention_weights: Tensor,
                   level_start_index: Tensor | None = None, backend: Backend = "auto",
                   deterministic: bool = False) -> Tensor:
    """Sample each level at the given locations and sum with the attention weights.

    Args:
        value: ``[B, Nv, H, D]``, the levels flattened one after the other.
        spatial_shapes: ``[L, 2]`` (height, width) per level: long tensor or list of pairs.
        sampling_locations: ``[B, Nq, H, L, P, 2]`` (x, y), 0..1 across the level's map.
        attention_weights: ``[B, Nq, H, L, P]``.
        level_start_index: ``[L]`` long; derived from ``spatial_shapes`` when omitted.
        backend: see the module docstring.
        deterministic: identical gradients on every run (``model.precise_msda``; module docstring).

    Returns:
        ``[B, Nq, H * D]``. Bilinear interpolation with zeros outside the map
        (``grid_sample`` with ``align_corners=False``) whatever the backend.
    """
    global _triton_failed
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (value, sampling_locations, attention_weights))
    chosen = resolve_backend(backend, value, needs_grad, deterministic)
    if chosen == "triton":
        if not _triton.available():
            raise RuntimeError("backend 'triton' was requested but Triton is not installed")
        shapes = torch.as_tensor(spatial_shapes, dtype=torch.long, device=value.device)
        if level_start_index is None:
            level_start_index = _gather.level_start_index_of(shapes)
        try:
            return _triton.ms_deform_attn_triton(value, shapes, sampling_locations,
                                                 attention_weights, level_start_index)
        except Exception as err:  # noqa: BLE001 - any compile/launch failure: fall back
            if backend == "triton" or isinstance(err, torch.OutOfMemoryError):
                raise
            _triton_failed = f"{type(err).__name__}: {err}"
            warnings.warn("The Triton deformable-attention kernel failed on this device "
                          f"({_triton_failed}); using the pure PyTorch path from now on.",
                          RuntimeWarning, stacklevel=2)
            chosen = "grid_sample" if needs_grad else "gather"
    shapes = _gather.as_shape_list(spatial_shapes)
    if not exporting() and sum(h * w for h, w in shapes) != value.shape[1]:
        raise ValueError(f"value has {value.shape[1]} positions but spatial_shapes {shapes} "
                         f"add up to {sum(h * w for h, w in shapes)}")
    if chosen == "grid_sample":
        return ms_deform_attn_grid_sample(value, shapes, sampling_locations, attention_weights)
    reduce = "index_select" if exporting() else "embedding_bag"
    return _gather.ms_deform_attn_gather(value, shapes, sampling_locations, attention_weights,
                                         reduce=reduce)


def _softmax_last(x: Tensor) -> Tensor:
    """``x.softmax(-1)`` for a short last axis (``L*P`` = 12-16 values).

    CPU softmax vectorises along the reduced axis, so rows of 12 values run nearly scalar:
    the softmax of the transpose over its first axis (vectorised across rows) is ~5x faster
    forward and backward, copies included. Exported graphs keep the plain form."""
    if exporting() or x.device.type != "cpu":
        return x.softmax(-1)
    n = x.shape[-1]
    return x.reshape(-1, n).t().contiguous().softmax(0).t().reshape(x.shape)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over ``num_levels`` feature maps.

    Args:
        embed_dim: channels ``C`` of query and value.
        num_levels: feature levels ``L``.
        num_heads: heads ``H``; ``embed_dim`` must be divisible by it.
        num_points: sampling points ``P`` per head and level.
        batch_first: ``True``: tensors are ``[B, N, C]``; ``False``: ``[N, B, C]``.
        backend: sampling backend (see the module docstring).
        deterministic: identical gradients on every run (``model.precise_msda``; module docstring).
    """

    def __init__(self, embed_dim: int = 256, num_levels: int = 4, num_heads: int = 8,
                 num_points: int = 4, batch_first: bool = True, backend: Backend = "auto",
                 deterministic: bool = False):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.embed_dim = embed_dim
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.batch_first = batch_first
        self.backend = backend
        self.deterministic = deterministic
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official Deformable DETR initialisation.

        Offsets start on a ring: head ``k`` points in direction ``2 pi k / H``, point
        ``p`` at distance ``p + 1`` (in pixels of each level); attention starts uniform.
        """
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]               # onto the unit square
        grid = grid.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor | None = None,
                value_padding_mask: Tensor | None = None, query_pos: Tensor | None = None) -> Tensor:
        """Attend from each query to its sampling points.

        Args:
            query: ``[B, Nq, C]`` (``[Nq, B, C]`` when not batch_first).
            reference_points: ``[B, Nq, L, 2]`` (x, y) or ``[B, Nq, L, 4]`` (cx, cy, w, h),
                normalised to [0, 1] of each level (padding included).
            value: ``[B, Nv, C]`` (``[Nv, B, C]`` when not batch_first), all levels flattened.
            spatial_shapes: ``[L, 2]`` long (height, width) per level.
            level_start_index: ``[L]`` long, start of each level in ``value``.
            value_padding_mask: ``[B, Nv]`` bool, True at padded positions (they read as 0).
            query_pos: optional ``[B, Nq, C]`` added to the query (not to the value).

        Returns:
            ``[B, Nq, C]`` (``[Nq, B, C]`` when not batch_first).
        """
        if not self.batch_first:
            query, value = query.transpose(0, 1), value.transpose(0, 1)
            if query_pos is not None:
                query_pos = query_pos.transpose(0, 1)
        if query_pos is not None:
            query = query + query_pos
        batch, num_query, _ = query.shape
        num_value = value.shape[1]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points

        value = self.value_proj(value)
        if value_padding_mask is not None:
            value = value.masked_fill(value_padding_mask[..., None], 0.0)
        value = value.view(batch, num_value, heads, self.embed_dim // heads)
        offsets = self.sampling_offsets(query).view(batch, num_query, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, num_query, heads, levels * points)
        weights = _softmax_last(weights).view(batch, num_query, heads, levels, points)

        # locations = centre + offsets * scale, per (level, point, xy). Centre and scale are
        # expanded over the points first (small tensors) so that the one big multiply-add
        # broadcasts only over heads, with a contiguous inner axis: this vectorises on CPU.
        if reference_points.shape[-1] == 2:
            # Offsets are in pixels of each level: divide by (width, height).
            size_xy = torch.as_tensor(spatial_shapes, device=query.device).flip(-1).to(offsets.dtype)
            centre = reference_points[:, :, None, :, None, :]
            scale = (1.0 / size_xy)[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            # Offsets are in units of half the box size, spread over the points.
            centre = reference_points[:, :, None, :, None, :2]
            scale = reference_points[:, :, None, :, None, 2:] * (0.5 / points)
        else:
            raise ValueError("reference_points must end in 2 (x, y) or 4 (cx, cy, w, h) values, "
                             f"got shape {tuple(reference_points.shape)}")
        centre = centre.expand(batch, num_query, 1, levels, points, 2).contiguous()
        scale = scale.expand(*scale.shape[:3], levels, points, 2).contiguous()
        locations = torch.addcmul(centre, offsets, scale)

        out = ms_deform_attn(value, spatial_shapes, locations, weights, level_start_index,
                             backend=self.backend, deterministic=self.deterministic)
        out = self.output_proj(out)
        return out if self.batch_first else out.transpose(0, 1)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_levels={self.num_levels}, "
                f"num_heads={self.num_heads}, num_points={self.num_points}, backend={self.backend!r}"
                + (", deterministic=True" if self.deterministic else ""))
