"""The feature enhancer: per layer, image<->text fusion, text self-attention, then
deformable image self-attention.

Official names: ``transformer.encoder.layers.N`` (deformable), ``.text_layers.N``
(text self-attention), ``.fusion_layers.N`` (bi-attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .fusion import BiAttentionBlock
from .layers import MultiheadAttention
from .ms_deform_attn import MultiScaleDeformableAttention
from .position_encoding import text_position_embedding


class DeformableEncoderLayer(nn.Module):
    """Post-norm deformable self-attention over the flattened multi-scale image tokens + FFN."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(embed_dim=d_model, num_levels=n_levels, num_heads=n_heads,
                                                      num_points=n_points, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, pad_mask: Tensor | None) -> Tensor:
        """``src, pos [B,N,C]``, ``reference_points [B,N,L,2]``, ``pad_mask [B,N]`` -> ``[B,N,C]``."""
        attn = self.self_attn(src + pos, reference_points, src, spatial_shapes, level_start_index, pad_mask)
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class TextEnhancerLayer(nn.Module):
    """Post-norm text self-attention restricted to each phrase (the phrase mask) + FFN."""

    def __init__(self, d_model: int, nhead: int, d_ffn: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, blocked: Tensor) -> Tensor:
        """``src, pos [B,L,C]``, ``blocked [B,L,L]`` bool (True = may not attend) -> ``[B,L,C]``."""
        q = k = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, src, attn_mask=blocked)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


def encoder_reference_points(spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor) -> Tensor:
    """Centre of every image token, in the padded frame, for each level.

    ``valid_ratios [B,L,2]`` (x, y) -> ``[B, N, L, 2]`` with N = sum(h*w).
    """
    refs = []
    dtype, device = valid_ratios.dtype, valid_ratios.device
    for level, (h, w) in enumerate(spatial_shapes):
        ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=dtype, device=device),
                                      torch.linspace(0.5, w - 0.5, w, dtype=dtype, device=device), indexing="ij")
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * h)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * w)
        refs.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]


class TransformerEncoder(nn.Module):
    """``num_layers`` enhancer layers.

    Args:
        d_model, d_ffn, dropout, n_levels, n_heads, n_points: image layer sizes
            (TAO: 256, 2048, 0, 4, 8, 4); the text layers use ``n_heads // 2`` heads
            and ``d_ffn // 2`` FFN width, fusion ``d_ffn // 2`` width and ``n_heads // 2`` heads.
        text_dropout, fusion_dropout, fusion_droppath: TAO fixes 0, 0, 0.1.
        activation_checkpoint: recompute each sub-layer in the backward pass.
    """

    def __init__(self, num_layers: int, d_model: int = 256, d_ffn: int = 2048, dropout: float = 0.0,
                 n_levels: int = 4, n_heads: int = 8, n_points: int = 4, text_dropout: float = 0.0,
                 fusion_dropout: float = 0.0, fusion_droppath: float = 0.1, activation_checkpoint: bool = False):
        super().__init__()
        self.d_model = d_model
        self.activation_checkpoint = activation_checkpoint
        self.layers = nn.ModuleList(DeformableEncoderLayer(d_model, d_ffn, dropout, n_levels, n_heads, n_points)
                                    for _ in range(num_layers))
        self.text_layers = nn.ModuleList(TextEnhancerLayer(d_model, n_heads // 2, d_ffn // 2, text_dropout)
                                         for _ in range(num_layers))
        self.fusion_layers = nn.ModuleList(BiAttentionBlock(d_model, d_model, d_ffn // 2, n_heads // 2, fusion_dropout,
                                                            fusion_droppath) for _ in range(num_layers))

    def _run(self, fn, *args):
        if self.activation_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, src: Tensor, pos: Tensor, *, spatial_shapes: Tensor, spatial_shapes_list: list[tuple[int, int]],
                level_start_index: Tensor, valid_ratios: Tensor, pad_mask: Tensor, text: Tensor,
                text_pad_mask: Tensor, text_self_attention_masks: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Image tokens ``src, pos [B,N,C]``, ``pad_mask [B,N]`` (True = pad); text ``[B,L,C]``,
        ``text_pad_mask [B,L]`` (True = pad), ``text_self_attention_masks [B,L,L]`` (True =
        may attend), ``position_ids [B,L]`` -> (memory [B,N,C], memory_text [B,L,C])."""
        reference_points = encoder_reference_points(spatial_shapes_list, valid_ratios)
        text_pos = text_position_embedding(position_ids, self.d_model, text.dtype)
        text_blocked = ~text_self_attention_masks
        for layer, text_layer, fusion in zip(self.layers, self.text_layers, self.fusion_layers):
            src, text = self._run(fusion, src, text, pad_mask, text_pad_mask)
            text = self._run(text_layer, text, text_pos, text_blocked)
            src = self._run(layer, src, pos, reference_points, spatial_shapes, level_start_index, pad_mask)
        return src, text
