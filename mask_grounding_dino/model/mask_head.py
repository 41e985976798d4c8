"""The mask branch: a pixel decoder plus per-query dynamic convolutions (CondInst style).

Every query gets its own tiny mask network. A controller MLP turns the query
embedding into the 169 weights and biases of three 1x1 convolutions
(10 -> 8 -> 8 -> 1); the network runs on 8 shared mask-feature channels plus 2
channels of coordinates relative to the query's reference point, at stride 8,
and the result is upsampled x2 (``aligned_bilinear``) to stride 4.

Parameter names are TAO's (``lay1..lay4``, ``jia_dcn``, ``controller.layers.N``)
so TAO checkpoints load by name; TAO keeps the controller beside the mask head
(``controller.*``) where we nest it (``mask_head.controller.*``):
:data:`TAO_RENAMES` gives the prefix map for the checkpoint importer.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: TAO key prefix -> our key prefix (when this module is the model's ``mask_head``).
TAO_RENAMES = {"controller.": "mask_head.controller."}


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (parameters ``layers.N.*``)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def aligned_bilinear(x: Tensor, factor: int) -> Tensor:
    """Upsample ``[N, C, h, w]`` to ``[N, C, f*h, f*w]`` keeping pixel centres aligned.

    Output pixel ``i`` samples the input at ``(i - f // 2) / f`` (clamped to the
    border), i.e. a stride-``f`` map whose cells are placed as a conv backbone
    places them; plain ``interpolate`` would shift the mask by half a cell.
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    # Replicate one extra row/column so the last input cell has a right/bottom neighbour,
    # interpolate so that input cell k lands exactly on output index f*k, then shift by f//2.
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[:, :, : factor * h, : factor * w]


def grid_locations(h: int, w: int, stride: int, *, device=None, dtype=torch.float32) -> Tensor:
    """Pixel centres ``(x, y)`` of a stride-``stride`` map, row-major: ``[h*w, 2]``.

    Cell ``(r, c)`` is at ``(c * stride + stride // 2, r * stride + stride // 2)``.
    """
    xs = torch.arange(w, device=device, dtype=dtype) * stride + stride // 2
    ys = torch.arange(h, device=device, dtype=dtype) * stride + stride // 2
    return torch.stack([xs.repeat(h), ys.repeat_interleave(w)], dim=1)


def memory_to_maps(memory: Tensor, spatial_shapes: Sequence[tuple[int, int]],
                   levels: Sequence[int] | None = None) -> list[Tensor]:
    """Flattened encoder memory ``[B, sum(Hi*Wi), C]`` -> one ``[B, C, Hi, Wi]`` map per level.

    ``levels``: which levels, in that order (default: all). ``spatial_shapes`` are python ints,
    so the slicing is static for export. The maps are channels-last views of ``memory`` (no copy).
    """
    starts = [0]
    for h, w in spatial_shapes:
        starts.append(starts[-1] + int(h) * int(w))
    maps = []
    for level in range(len(spatial_shapes)) if levels is None else levels:
        h, w = (int(s) for s in spatial_shapes[level])
        flat = memory[:, starts[level]:starts[level] + h * w]
        maps.append(flat.view(flat.shape[0], h, w, -1).permute(0, 3, 1, 2))
    return maps


def reference_to_pixels(reference: Tensor, image_sizes: Tensor) -> Tensor:
    """Reference points normalised to the unpadded image -> pixels of the input tensor.

    Args:
        reference: [B, Q, >=2] sigmoid-space boxes or points (cx, cy first).
        image_sizes: [B, 2] (h, w) of each image before padding (padding is
            right/bottom, so pixel coordinates are the same in the padded tensor).
    Returns:
        [B, Q, 2] (x, y) in pixels.
    """
    scale = image_sizes.to(reference.dtype).flip(-1)  # (w, h)
    return reference[..., :2] * scale[:, None, :]


def relative_coords(ref_xy: Tensor, h: int, w: int, stride: int) -> Tensor:
    """Reference point minus every cell centre of an ``h x w`` stride map, not normalised.

    Args:
        ref_xy: [..., 2] (x, y) pixels.
    Returns:
        [..., 2, h*w]
    """
    loc = grid_locations(h, w, stride, device=ref_xy.device, dtype=ref_xy.dtype)  # [P, 2]
    return ref_xy.unsqueeze(-1) - loc.t()


class MaskHead(nn.Module):
    """Pixel decoder + controller + dynamic mask convolutions.

    Args:
        hidden_dim: width C of the encoder memory and of the queries.
        mask_dim: channels of the shared mask features (TAO: 8 = 256 // 32).
        dynamic_channels: width of the per-query convolutions (TAO: 8).
        chunk_elements: bound on the elements of one per-query activation chunk in
            :meth:`predict` (queries x channels x pixels). None = automatic: 2**21 on CPU
            (blocks that stay in the allocator's cache: 900 queries at 544x960 took 0.5 s
            of CPU time against 1.45 s as one block, single thread) and 2**27 elsewhere
            (one chunk up to 900 queries at 800x1333, ~0.5 GB per activation). Set it
            large for export, where the query loop would be unrolled into the graph.
    """

    feat_stride = 8   # mask features live at stride 8
    out_stride = 4    # masks are returned at stride 4

    def __init__(self, *, hidden_dim: int = 256, mask_dim: int = 8, dynamic_channels: int = 8,
                 chunk_elements: int | None = None):
        super().__init__()
        c = hidden_dim
        self.hidden_dim = hidden_dim
        self.mask_dim = mask_dim
        self.dynamic_channels = dynamic_channels
        self.chunk_elements = chunk_elements
        # Pixel decoder (TAO names): lay3 on stride 32, lay4 after adding stride 16,
        # jia_dcn after adding stride 8 (-> ``fused``), then lay1/lay2 down to mask_dim.
        self.lay3 = nn.Conv2d(c, c, 3, padding=1)
        self.lay4 = nn.Conv2d(c, c, 3, padding=1)
        self.jia_dcn = nn.Conv2d(c, c, 3, padding=1)
        self.lay1 = nn.Conv2d(c, c // 4, 3, padding=1)
        self.lay2 = nn.Conv2d(c // 4, mask_dim, 3, padding=1)
        for conv in (self.lay3, self.lay4, self.jia_dcn, self.lay1, self.lay2):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)
        # Dynamic conv shapes (out, in): coordinates come first in the input channels, as TAO.
        d = dynamic_channels
        self.conv_shapes = [(d, mask_dim + 2), (d, d), (1, d)]
        weight_sizes = [o * i for o, i in self.conv_shapes]
        bias_sizes = [o for o, _ in self.conv_shapes]
        self.param_splits = weight_sizes + bias_sizes   # all weights first, then all biases
        self.num_dynamic_params = sum(self.param_splits)  # 169 for the defaults
        self.controller = MLP(c, c, self.num_dynamic_params, 3)
        for layer in self.controller.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        # NHWC convolutions (faster on CPU); the model passes channels-last memory maps.
        for conv in (self.lay3, self.lay4, self.jia_dcn, self.lay1, self.lay2):
            conv.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, model_cfg) -> "MaskHead":
        """From the spec's ``model`` section (``hidden_dim``)."""
        return cls(hidden_dim=int(model_cfg.hidden_dim))

    # ---------------------------------------------------------------- pixel decoder
    def features(self, memory_maps: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Top-down fusion of the encoder memory.

        Args:
            memory_maps: maps at strides 8, 16, 32, in that order: ``[B, C, Hi, Wi]``.
        Returns:
            mask_feats [B, mask_dim, H8, W8] and fused [B, C, H8, W8] (the ReLA input).
        """
        s8, s16, s32 = memory_maps
        x = F.relu(self.lay3(s32))
        # Upsample to the next map's exact size (not x2), so odd sizes line up.
        x = F.relu(self.lay4(s16 + F.interpolate(x, size=s16.shape[-2:], mode="nearest")))
        fused = F.relu(self.jia_dcn(s8 + F.interpolate(x, size=s8.shape[-2:], mode="nearest")))
        mask_feats = F.relu(self.lay2(F.relu(self.lay1(fused))))
        return mask_feats, fused

    # ---------------------------------------------------------------- dynamic convs
    def _split_params(self, params: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """[..., 169] -> weights [..., out, in] and biases [..., out, 1] of the three convs."""
        parts = torch.split(params, self.param_splits, dim=-1)
        n = len(self.conv_shapes)
        lead = params.shape[:-1]
        weights = [p.reshape(*lead, o, i) for p, (o, i) in zip(parts[:n], self.conv_shapes)]
        biases = [p.unsqueeze(-1) for p in parts[n:]]
        return weights, biases

    def _with_cells(self, mask_feats: Tensor) -> Tensor:
        """[B, mask_dim, h, w] -> [B, 2 + mask_dim, P]: every cell's centre (x, y) in pixels, then the
        shared features (the first dynamic conv's input apart from the reference point)."""
        b, _, h, w = mask_feats.shape
        cells = grid_locations(h, w, self.feat_stride, device=mask_feats.device, dtype=mask_feats.dtype)  # [P, 2]
        return torch.cat([cells.t().expand(b, 2, h * w), mask_feats.flatten(2)], dim=1)

    def _dynamic_logits(self, params: Tensor, ref_xy: Tensor, shared: Tensor) -> Tensor:
        """Run the per-instance 1x1 convs on [relative coordinates; shared features].

        Args:
            params: [*, 169]; ref_xy: [*, 2] reference (x, y) in pixels;
            shared: [*', 2 + mask_dim, P] from :meth:`_with_cells`, broadcastable to [*].
        Returns:
            [*, P] mask logits.

        The first conv's coordinate channels are ``ref - cell`` (:func:`relative_coords`). Its
        linear part splits as ``w @ ref - w @ cell``: the first term is one value per channel, folded
        into the bias, and the second shares the cell grid across queries, so the grid joins the
        features as two more shared input channels. One matrix product then covers all input
        channels, and no per-query [*, 2, P] coordinate map is built. This is the same function up to
        float rounding; on Swin-T at 800x1333 (900 queries) it removed about a tenth of an
        onnxruntime forward pass.
        """
        (w0, w1, w2), (b0, b1, b2) = self._split_params(params)
        weights = torch.cat([-w0[..., :2], w0[..., 2:]], dim=-1)
        x = weights @ shared + (w0[..., :2] @ ref_xy.unsqueeze(-1) + b0)
        x = F.relu(x)
        x = F.relu(w1 @ x + b1)
        return (w2 @ x + b2).squeeze(-2)

    def _upsample(self, logits: Tensor, h: int, w: int) -> Tensor:
        """[N, h*w] -> [N, 2h, 2w] (stride 8 -> stride 4)."""
        factor = self.feat_stride // self.out_stride
        return aligned_bilinear(logits.reshape(-1, 1, h, w), factor)[:, 0]

    def predict(self, mask_feats: Tensor, queries: Tensor, ref_xy: Tensor) -> Tensor:
        """Masks of every query (evaluation / export).

        Args:
            mask_feats: [B, mask_dim, h, w] from :meth:`features`.
            queries: [B, Q, C] decoder output of the last layer.
            ref_xy: [B, Q, 2] reference (x, y) in pixels of the input tensor
                (see :func:`reference_to_pixels`).
        Returns:
            [B, Q, 1, 2h, 2w] mask logits.
        """
        b, _, h, w = mask_feats.shape
        q = queries.shape[1]
        params = self.controller(queries)                       # [B, Q, 169]
        shared = self._with_cells(mask_feats).unsqueeze(1)      # [B, 1, 2 + mask_dim, P], once for all chunks
        budget = self.chunk_elements
        if budget is None:
            budget = 1 << 21 if mask_feats.device.type == "cpu" else 1 << 27
        step = max(1, budget // max(b * self.dynamic_channels * h * w, 1))
        chunks = []
        for start in range(0, q, step):  # static trip count: depends on shapes only
            sl = slice(start, min(q, start + step))
            logits = self._dynamic_logits(params[:, sl], ref_xy[:, sl], shared)   # [B, q', P]
            chunks.append(self._upsample(logits, h, w).reshape(b, -1, 2 * h, 2 * w))
        out = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)
        return out.unsqueeze(2)

    def predict_pairs(self, mask_feats: Tensor, queries: Tensor, ref_xy: Tensor, batch_idx: Tensor) -> Tensor:
        """Masks of selected (image, query) pairs only (training: the matched queries).

        Args:
            mask_feats: [B, mask_dim, h, w]
            queries: [K, C] embeddings of the selected queries.
            ref_xy: [K, 2] their reference points in pixels.
            batch_idx: [K] long, image of each pair.
        Returns:
            [K, 2h, 2w] mask logits (K may be 0).
        """
        _, _, h, w = mask_feats.shape
        params = self.controller(queries)                                   # [K, 169]
        shared = self._with_cells(mask_feats)[batch_idx]                    # [K, 2 + mask_dim, P]
        logits = self._dynamic_logits(params, ref_xy, shared)               # [K, P]
        return self._upsample(logits, h, w)
