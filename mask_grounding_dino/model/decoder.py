"""The cross-modality decoder with iterative box refinement.

Official names: ``transformer.decoder.layers.N.{self_attn, norm2, ca_text, catext_norm,
cross_attn, norm1, linear1, linear2, norm3}``, ``transformer.decoder.norm``,
``transformer.decoder.ref_point_head``; ``bbox_embed`` / ``class_embed`` are the
model's prediction heads, shared with the decoder for the refinement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import MLP, MultiheadAttention, inverse_sigmoid
from .ms_deform_attn import MultiScaleDeformableAttention
from .position_encoding import sine_embed


class DecoderLayer(nn.Module):
    """Self-attention -> text cross-attention -> deformable image cross-attention -> FFN (post-norm)."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.cross_attn = MultiScaleDeformableAttention(embed_dim=d_model, num_levels=n_levels, num_heads=n_heads,
                                                       num_points=n_points, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ca_text = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.catext_dropout = nn.Dropout(dropout)
        self.catext_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, *, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                memory_pad_mask: Tensor | None, spatial_shapes: Tensor, level_start_index: Tensor,
                memory_text: Tensor, text_pad_mask: Tensor | None, self_attn_mask: Tensor | None) -> Tensor:
        """``tgt, query_pos [B,Q,C]``, ``reference_points [B,Q,L,4]``, ``memory [B,N,C]``,
        ``memory_text [B,T,C]``, masks bool (True = blocked / padding) -> ``[B,Q,C]``."""
        q = k = tgt + query_pos
        tgt = self.norm2(tgt + self.dropout2(self.self_attn(q, k, tgt, attn_mask=self_attn_mask)))
        attn = self.ca_text(tgt + query_pos, memory_text, memory_text, key_padding_mask=text_pad_mask)
        tgt = self.catext_norm(tgt + self.catext_dropout(attn))
        attn = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes, level_start_index,
                               memory_pad_mask)
        tgt = self.norm1(tgt + self.dropout1(attn))
        ffn = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(ffn))


@dataclass
class DecoderOutput:
    """``hidden`` per layer ``[B,Q,C]`` (after the shared LayerNorm); ``references``:
    L+1 sigmoid boxes ``[B,Q,4]``: the input reference of every layer and the last
    layer's refined box. Entries 1.. are NOT detached (the next layer receives a
    detached copy), so a layer's box loss also trains the previous layer's box head
    ("look forward twice", as the original)."""

    hidden: list[Tensor]
    references: list[Tensor]


class TransformerDecoder(nn.Module):
    """Args: num_layers, d_model, d_ffn, dropout, n_levels, n_heads, n_points as the spec;
    ``ref_eps``: clamp of the inverse sigmoid (1e-5, as TAO and transformers; the original release used 1e-3)."""

    def __init__(self, num_layers: int, d_model: int = 256, d_ffn: int = 2048, dropout: float = 0.0,
                 n_levels: int = 4, n_heads: int = 8, n_points: int = 4, activation_checkpoint: bool = False,
                 ref_eps: float = 1e-5):
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(DecoderLayer(d_model, d_ffn, dropout, n_levels, n_heads, n_points)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)
        self.activation_checkpoint = activation_checkpoint
        self.ref_eps = ref_eps
        # Set by the model: the box head (per layer) used for iterative refinement,
        # and the class head (kept here so the official state-dict keys exist).
        self.bbox_embed: nn.ModuleList | None = None
        self.class_embed: nn.ModuleList | None = None

    def forward(self, tgt: Tensor, memory: Tensor, *, memory_pad_mask: Tensor, refpoints_unsigmoid: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, valid_ratios: Tensor, memory_text: Tensor,
                text_pad_mask: Tensor, self_attn_mask: Tensor | None = None) -> DecoderOutput:
        """``tgt [B,Q,C]``, ``refpoints_unsigmoid [B,Q,4]`` (logit space), ``valid_ratios [B,L,2]``,
        ``self_attn_mask [B,Q,Q]`` bool (True = blocked; denoising groups) or None."""
        output = tgt
        reference = refpoints_unsigmoid.sigmoid()
        references = [reference]
        hidden = []
        ratios = torch.cat([valid_ratios, valid_ratios], -1)[:, None]          # [B,1,L,4]
        for layer_id, layer in enumerate(self.layers):
            ref_input = reference[:, :, None] * ratios                          # [B,Q,L,4]
            query_pos = self.ref_point_head(sine_embed(ref_input[:, :, 0, :], self.d_model // 2))
            inputs = dict(query_pos=query_pos, reference_points=ref_input, memory=memory,
                          memory_pad_mask=memory_pad_mask, spatial_shapes=spatial_shapes,
                          level_start_index=level_start_index, memory_text=memory_text, text_pad_mask=text_pad_mask,
                          self_attn_mask=self_attn_mask)
            if self.activation_checkpoint and self.training and torch.is_grad_enabled():
                output = checkpoint(layer, output, use_reentrant=False, **inputs)
            else:
                output = layer(output, **inputs)
            if self.bbox_embed is not None:
                new_reference = (self.bbox_embed[layer_id](output) + inverse_sigmoid(reference, self.ref_eps)).sigmoid()
                reference = new_reference.detach()
                references.append(new_reference)
            hidden.append(self.norm(output))
        return DecoderOutput(hidden=hidden, references=references)
