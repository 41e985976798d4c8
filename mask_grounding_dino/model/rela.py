"""ReLA region head (GRES): "is anything here?" and "where, as a whole?" for a prompt.

A small Mask2Former-style decoder of learnable region queries over three levels
of encoder memory (strides 32, 16, 8). Each layer: cross-attention to one level,
masked by the previous prediction (cells whose region mask is < 0.5 are hidden
from a query; a query that would see nothing sees everything); in layer 0 only,
cross-attention to the text; self-attention; FFN. The prediction head gives

* ``minimap`` [B, Qr, 2]: each region query's (background, foreground) logit;
* ``union_mask_logits`` [B, 2, H/8, W/8]: the (bg, fg) maps, a minimap-weighted
  sum of region embeddings dotted with the fused pixel features;
* ``no_targets`` [B, 2]: index 1 = nothing in the image matches the prompt.

Only the last layer's outputs are returned (TAO uses only those); earlier
layers' predictions serve only as attention masks. Parameter names follow TAO
(``RIA_layers``, ``RLA_vision``, ``RLA_lang_att``, ``lang_weight``, ...), so TAO
checkpoints load by name. No data-dependent Python control flow (exportable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MultiheadAttention
from .mask_head import MLP


@dataclass
class RegionOutputs:
    no_targets: Tensor          # [B, 2] logits, index 1 = no target
    union_mask_logits: Tensor   # [B, 2, H/8, W/8] (background, foreground)
    minimap: Tensor             # [B, Qr, 2]


class _Sublayer(nn.Module):
    """Residual + LayerNorm around a function, post-norm (TAO default) or pre-norm."""

    def __init__(self, dim: int, pre_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pre_norm = pre_norm

    def residual(self, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + fn(self.norm(x))
        return self.norm(x + fn(x))

    def _xavier(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)


class CrossAttentionLayer(_Sublayer):
    """Queries attend to a memory; positions are added to queries and keys, not values.

    ``variable_memory``: the memory's length varies between calls of one exported graph (the
    text, whose length is a dynamic ONNX axis in the CPU INT8 graph); torch's
    ``nn.MultiheadAttention`` bakes the traced key length into a reshape, our
    :class:`~.layers.MultiheadAttention` (same parameter names and initialisation) does not.
    """

    def __init__(self, dim: int, nheads: int, pre_norm: bool = False, variable_memory: bool = False):
        super().__init__(dim, pre_norm)
        self.multihead_attn = (MultiheadAttention(dim, nheads) if variable_memory
                               else nn.MultiheadAttention(dim, nheads, batch_first=True))
        self._xavier()

    def forward(self, x: Tensor, memory: Tensor, *, memory_pos: Tensor | None = None,
                query_pos: Tensor | None = None, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        """x [B, Q, C], memory [B, S, C], attn_mask [B*heads, Q, S] bool (True = hidden)."""
        key = memory if memory_pos is None else memory + memory_pos

        def attend(t: Tensor) -> Tensor:
            query = t if query_pos is None else t + query_pos
            if isinstance(self.multihead_attn, MultiheadAttention):
                mask = None if attn_mask is None else attn_mask.view(x.shape[0], -1, *attn_mask.shape[1:])
                return self.multihead_attn(query, key, memory, attn_mask=mask, key_padding_mask=key_padding_mask)
            return self.multihead_attn(query, key, memory, attn_mask=attn_mask,
                                       key_padding_mask=key_padding_mask, need_weights=False)[0]
        return self.residual(x, attend)


class SelfAttentionLayer(_Sublayer):
    def __init__(self, dim: int, nheads: int, pre_norm: bool = False):
        super().__init__(dim, pre_norm)
        self.self_attn = nn.MultiheadAttention(dim, nheads, batch_first=True)
        self._xavier()

    def forward(self, x: Tensor, *, query_pos: Tensor | None = None) -> Tensor:
        def attend(t: Tensor) -> Tensor:
            qk = t if query_pos is None else t + query_pos
            return self.self_attn(qk, qk, t, need_weights=False)[0]
        return self.residual(x, attend)


class FFNLayer(_Sublayer):
    def __init__(self, dim: int, dim_feedforward: int, pre_norm: bool = False):
        super().__init__(dim, pre_norm)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self._xavier()

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x, lambda t: self.linear2(F.relu(self.linear1(t))))


def region_attention_mask(region_logits: Tensor, size: tuple[int, int], nheads: int) -> Tensor:
    """Attention mask for the next layer from the region-mask logits.

    Args:
        region_logits: [B, Qr, H8, W8] logits of each region query's mask.
        size: (h, w) of the memory level attended next.
    Returns:
        [B*nheads, Qr, h*w] bool, True where the key is hidden (sigmoid < 0.5).
        Rows that would hide every key are released (all False), as Mask2Former.
    """
    small = F.interpolate(region_logits, size=size, mode="bilinear", align_corners=False)
    hidden = (small.sigmoid() < 0.5).flatten(2)                   # [B, Qr, h*w]
    hidden = hidden & ~hidden.all(dim=-1, keepdim=True)
    return hidden.repeat_interleave(nheads, dim=0).detach()


class RegionHead(nn.Module):
    """ReLA region head.

    Args:
        hidden_dim: width C of memory, text features and region queries.
        num_region_queries: Qr (TAO ``num_region_queries``, default 100).
        num_layers: decoder layers (TAO: ``dec_layers``).
        nheads, dim_feedforward, pre_norm: as the model section of the spec.
        lang_scale: fixed factor on the text cross-attention residual (TAO: 0.1);
            it is further scaled by ``sigmoid(lang_weight)``, learnable, init 0.
        mask_text_padding: hide padded text tokens from the text cross-attention.
            False = TAO (no padding mask); then the outputs depend slightly on how
            far the caption is padded (longest-in-batch vs 256 for export).
    """

    num_levels = 3

    def __init__(self, *, hidden_dim: int = 256, num_region_queries: int = 100, num_layers: int = 6,
                 nheads: int = 8, dim_feedforward: int = 2048, pre_norm: bool = False,
                 lang_scale: float = 0.1, mask_text_padding: bool = False):
        super().__init__()
        c = hidden_dim
        self.nheads = nheads
        self.num_layers = num_layers
        self.lang_scale = lang_scale
        self.mask_text_padding = mask_text_padding
        self.RIA_layers = nn.ModuleList(CrossAttentionLayer(c, nheads, pre_norm) for _ in range(num_layers))
        self.RLA_vision = nn.ModuleList(SelfAttentionLayer(c, nheads, pre_norm) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(c, dim_feedforward, pre_norm)
                                                    for _ in range(num_layers))
        self.RLA_lang_att = CrossAttentionLayer(c, nheads, pre_norm, variable_memory=True)
        self.lang_weight = nn.Parameter(torch.zeros(()))
        self.decoder_norm = nn.LayerNorm(c)
        self.query_feat = nn.Embedding(num_region_queries, c)    # content of the region queries
        self.query_embed = nn.Embedding(num_region_queries, c)   # their positional part
        self.level_embed = nn.Embedding(self.num_levels, c)
        self.mask_embed = MLP(c, c, c, 3)
        self.minimap_embed = nn.Linear(c, 2)
        self.nt_embed = MLP(c, c, 2, 2)

    @classmethod
    def from_config(cls, model_cfg) -> "RegionHead":
        """From the spec's ``model`` section (TAO keys)."""
        return cls(hidden_dim=int(model_cfg.hidden_dim), num_region_queries=int(model_cfg.num_region_queries),
                   num_layers=int(model_cfg.dec_layers), nheads=int(model_cfg.nheads),
                   dim_feedforward=int(model_cfg.dim_feedforward), pre_norm=bool(model_cfg.pre_norm))

    def forward(self, memory_maps: Sequence[Tensor], pos_maps: Sequence[Tensor], fused: Tensor,
                text_feats: Tensor, text_mask: Tensor | None = None) -> RegionOutputs:
        """
        Args:
            memory_maps: encoder memory at strides 32, 16, 8 (in that order), [B, C, Hi, Wi].
            pos_maps: their sine position embeddings, same shapes.
            fused: [B, C, H8, W8] fused pixel features from ``MaskHead.features``.
            text_feats: [B, L, C] enhanced text features.
            text_mask: [B, L] bool, True at real tokens (used only with ``mask_text_padding``).
        """
        b = fused.shape[0]
        sizes = [tuple(m.shape[-2:]) for m in memory_maps]
        keys = [m.flatten(2).transpose(1, 2) + self.level_embed.weight[i]
                for i, m in enumerate(memory_maps)]                            # [B, HiWi, C]
        key_pos = [p.flatten(2).transpose(1, 2) for p in pos_maps]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        x = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        text_padding = None
        if self.mask_text_padding and text_mask is not None:
            text_padding = ~text_mask.bool()

        attn_mask = self._attention_mask(x, fused, sizes[0])
        for i in range(self.num_layers):
            level = i % self.num_levels
            x = self.RIA_layers[i](x, keys[level], memory_pos=key_pos[level], query_pos=query_pos,
                                   attn_mask=attn_mask)
            if i == 0:
                # The text enters once, as a small learnable-weight residual.
                lang = self.RLA_lang_att(x, text_feats, key_padding_mask=text_padding)
                x = x + lang * torch.sigmoid(self.lang_weight) * self.lang_scale
            x = self.RLA_vision[i](x, query_pos=query_pos)
            x = self.transformer_ffn_layers[i](x)
            if i < self.num_layers - 1:
                attn_mask = self._attention_mask(x, fused, sizes[(i + 1) % self.num_levels])
        return self._predict(x, fused)

    def _attention_mask(self, queries: Tensor, fused: Tensor, size: tuple[int, int]) -> Tensor:
        region = self.mask_embed(self.decoder_norm(queries))                 # [B, Qr, C]
        logits = torch.einsum("bqc,bchw->bqhw", region, fused)
        return region_attention_mask(logits, size, self.nheads)

    def _predict(self, queries: Tensor, fused: Tensor) -> RegionOutputs:
        feats = self.decoder_norm(queries)
        region = self.mask_embed(feats)                                         # [B, Qr, C]
        minimap = self.minimap_embed(feats)                                     # [B, Qr, 2]
        union_embed = torch.einsum("bqa,bqc->bac", minimap, region)             # [B, 2, C]
        union = torch.einsum("bac,bchw->bahw", union_embed, fused)
        no_targets = self.nt_embed(feats).mean(dim=1)
        return RegionOutputs(no_targets=no_targets, union_mask_logits=union, minimap=minimap)
