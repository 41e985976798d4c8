"""Bi-directional image <-> text attention of the feature enhancer (official names:
``transformer.encoder.fusion_layers.N.{layer_norm_v, layer_norm_l, attn.*, gamma_v, gamma_l}``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import DropPath

#: Attention logits are clamped to +-50000 so half precision cannot overflow (as the original).
_CLAMP = 50000.0


class BiMultiHeadAttention(nn.Module):
    """One attention map shared by both directions: image tokens attend to text
    tokens, and (through its transpose) text tokens attend to image tokens.

    Args:
        v_dim, l_dim: widths of image and text tokens; embed_dim: attention width;
        num_heads: heads; dropout: on the attention probabilities.
    """

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"fusion width {embed_dim} is not divisible by {num_heads} heads")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.dropout = float(dropout)
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        for lin in (self.v_proj, self.l_proj, self.values_v_proj, self.values_l_proj, self.out_v_proj, self.out_l_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2).reshape(b * self.num_heads, n, self.head_dim)

    def _merge(self, x: Tensor, batch: int) -> Tensor:
        n = x.shape[1]
        return x.view(batch, self.num_heads, n, self.head_dim).transpose(1, 2).reshape(batch, n, self.embed_dim)

    def forward(self, v: Tensor, l: Tensor, pad_mask_v: Tensor | None = None,
                pad_mask_l: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``v [B,Nv,Cv]``, ``l [B,Nl,Cl]``, pad masks bool (True = padding)
        -> (delta_v [B,Nv,Cv], delta_l [B,Nl,Cl])."""
        batch = v.shape[0]
        query = self._heads(self.v_proj(v) * self.scale)
        key = self._heads(self.l_proj(l))
        value_v = self._heads(self.values_v_proj(v))
        value_l = self._heads(self.values_l_proj(l))
        logits = torch.bmm(query, key.transpose(1, 2))                     # [B*h, Nv, Nl]
        # A global shift keeps the clamp meaningful without changing either softmax.
        logits = (logits - logits.max()).clamp(min=-_CLAMP, max=_CLAMP)
        logits_t = logits.transpose(1, 2)
        logits_t = (logits_t - logits_t.max(dim=-1, keepdim=True)[0]).clamp(min=-_CLAMP, max=_CLAMP)
        if pad_mask_v is not None:
            mask = pad_mask_v[:, None, None, :].expand(-1, self.num_heads, -1, -1).flatten(0, 1)
            logits_t = logits_t.masked_fill(mask, float("-inf"))
        if pad_mask_l is not None:
            mask = pad_mask_l[:, None, None, :].expand(-1, self.num_heads, -1, -1).flatten(0, 1)
            logits = logits.masked_fill(mask, float("-inf"))
        probs_v = F.dropout(logits.softmax(dim=-1), p=self.dropout, training=self.training)
        probs_l = F.dropout(logits_t.softmax(dim=-1), p=self.dropout, training=self.training)
        delta_v = self.out_v_proj(self._merge(torch.bmm(probs_v, value_l), batch))
        delta_l = self.out_l_proj(self._merge(torch.bmm(probs_l, value_v), batch))
        return delta_v, delta_l


class BiAttentionBlock(nn.Module):
    """Pre-norm bi-attention with layer scale (``gamma_*``, init 1e-4) and drop-path.

    ``forward(v [B,Nv,C], l [B,Nl,C], pad_mask_v [B,Nv], pad_mask_l [B,Nl]) -> (v, l)``.
    """

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 drop_path: float = 0.0, init_values: float = 1e-4):
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim, num_heads, dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.gamma_v = nn.Parameter(init_values * torch.ones(v_dim))
        self.gamma_l = nn.Parameter(init_values * torch.ones(l_dim))

    def forward(self, v: Tensor, l: Tensor, pad_mask_v: Tensor | None = None,
                pad_mask_l: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.layer_norm_v(v)
        l = self.layer_norm_l(l)
        delta_v, delta_l = self.attn(v, l, pad_mask_v, pad_mask_l)
        return v + self.drop_path(self.gamma_v * delta_v), l + self.drop_path(self.gamma_l * delta_l)
