"""Bi-directional image <-> text attention of the feature enhancer (official names:
``transformer.encoder.fusion_layers.N.{layer_norm_v, layer_norm_l, attn.*, gamma_v, gamma_l}``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import DropPath
from .tracing import capturing_graph


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
        if self._reorder_pays(v.shape[-1], l.shape[1]) and not (self.training and self.dropout > 0):
            return self._forward_reordered(v, l, pad_mask_v, pad_mask_l)
        return self._forward_projected(v, l, pad_mask_v, pad_mask_l)

    def _reorder_pays(self, v_dim: int, text_len: int) -> bool:
        """The image-side products cost ``3 Nv h d (Cv + Nl)`` multiply-adds as written and
        ``3 Nv h Cv Nl`` reordered (see :meth:`_forward_reordered`): short captions win.
        Only for plain float layers: the reordering reads the weights directly, past a quantised
        layer's own forward (its weight quantiser, its int8 weight tensor)."""
        plain = all(type(m) is nn.Linear and type(m.weight.data) is torch.Tensor
                    for m in (self.v_proj, self.values_v_proj, self.out_v_proj))
        return plain and v_dim * text_len <= self.head_dim * (v_dim + text_len)

    def _masked_logits(self, logits: Tensor, text_dim: int, image_dim: int, pad_mask_v: Tensor | None,
                       pad_mask_l: Tensor | None) -> tuple[Tensor, Tensor]:
        """Shifted, clamped and masked logits of both directions (same layout as ``logits``).

        ``text_dim`` / ``image_dim``: the axes of the text / image tokens; masks ``[B, N*]``.
        """
        # A global shift keeps the clamp meaningful without changing either softmax.
        logits = (logits - logits.max()).clamp(min=-_CLAMP, max=_CLAMP)
        logits_t = (logits - logits.amax(dim=image_dim, keepdim=True)).clamp(min=-_CLAMP, max=_CLAMP)
        if pad_mask_v is not None:
            shape = [pad_mask_v.shape[0]] + [1] * (logits.dim() - 1)
            shape[image_dim] = pad_mask_v.shape[1]
            logits_t = logits_t.masked_fill(pad_mask_v.view(shape), float("-inf"))
        if pad_mask_l is not None:
            shape = [pad_mask_l.shape[0]] + [1] * (logits.dim() - 1)
            shape[text_dim] = pad_mask_l.shape[1]
            logits = logits.masked_fill(pad_mask_l.view(shape), float("-inf"))
        return logits, logits_t

    def _probabilities(self, logits: Tensor, heads: int, pad_mask_v: Tensor | None, pad_mask_l: Tensor | None
                       ) -> tuple[Tensor, Tensor]:
        """Both directions' attention from ``logits [B, Nv, h*Nl]``: ``probs_v [B, Nv, h*Nl]``
        (softmax over text tokens) and ``probs_l [B, h*Nl, Nv]`` (over image tokens).

        The clamp of :meth:`_masked_logits` only acts when the logits span more than
        ``_CLAMP`` (never in float32 practice, one min/max pass tells): otherwise both
        softmaxes are shift invariant and the shifts are skipped, which is exact up to
        rounding. The image-side softmax then runs on the transpose (contiguous rows).
        """
        batch, num_v, width = logits.shape
        num_l = width // heads
        if not capturing_graph():
            low, high = torch.aminmax(logits)
            inactive = bool(low - high >= -_CLAMP)          # False for NaN: take the general path
        else:
            inactive = False
        if not inactive:
            logits4, logits_t = self._masked_logits(logits.view(batch, num_v, heads, num_l), 3, 1, pad_mask_v,
                                                    pad_mask_l)
            probs_v = logits4.softmax(dim=-1).view(batch, num_v, width)
            probs_l = logits_t.softmax(dim=1).view(batch, num_v, width).transpose(1, 2)
            return probs_v, probs_l
        text_logits = logits
        if pad_mask_l is not None and bool(pad_mask_l.any()):
            mask = pad_mask_l[:, None, None, :].expand(batch, 1, heads, num_l).reshape(batch, 1, width)
            text_logits = logits.masked_fill(mask, float("-inf"))
        image_logits = logits
        if pad_mask_v is not None and bool(pad_mask_v.any()):
            image_logits = logits.masked_fill(pad_mask_v[:, :, None], float("-inf"))
        probs_v = text_logits.view(batch, num_v, heads, num_l).softmax(dim=-1).view(batch, num_v, width)
        probs_l = image_logits.transpose(1, 2).contiguous().softmax(dim=-1)
        return probs_v, probs_l

    def _forward_projected(self, v: Tensor, l: Tensor, pad_mask_v: Tensor | None,
                           pad_mask_l: Tensor | None) -> tuple[Tensor, Tensor]:
        """As written in the original: project both sides, attend per head, project back."""
        batch = v.shape[0]
        query = self._heads(self.v_proj(v) * self.scale)
        key = self._heads(self.l_proj(l))
        value_v = self._heads(self.values_v_proj(v))
        value_l = self._heads(self.values_l_proj(l))
        logits = torch.bmm(query, key.transpose(1, 2))                     # [B*h, Nv, Nl]
        h = self.num_heads
        logits, logits_t = self._masked_logits(logits.view(batch, h, *logits.shape[1:]), 3, 2,
                                               pad_mask_v, pad_mask_l)
        probs_v = F.dropout(logits.flatten(0, 1).softmax(dim=-1), p=self.dropout, training=self.training)
        probs_l = F.dropout(logits_t.flatten(0, 1).transpose(1, 2).softmax(dim=-1), p=self.dropout,
                            training=self.training)
        delta_v = self.out_v_proj(self._merge(torch.bmm(probs_v, value_l), batch))
        delta_l = self.out_l_proj(self._merge(torch.bmm(probs_l, value_v), batch))
        return delta_v, delta_l

    def _forward_reordered(self, v: Tensor, l: Tensor, pad_mask_v: Tensor | None,
                           pad_mask_l: Tensor | None) -> tuple[Tensor, Tensor]:
        """The same function with the image-side projections moved to the text side.

        Per head ``j`` (weights ``W*_j``: the head's rows of ``v_proj`` / ``values_v_proj``,
        its columns of ``out_v_proj``; ``k_j``, ``u_j`` the head's text keys / values)::

            logits_j = (v Wq_j^T + bq_j) s k_j^T = v (s Wq_j^T k_j^T) + s bq_j k_j^T
            delta_v  = sum_j probs_v_j (u_j Wo_j^T) + bo
            text_j   = probs_l_j (v Wv_j^T + bv_j) = (probs_l_j v) Wv_j^T + bv_j   (rows sum to 1)

        so no ``[Nv, embed_dim]`` tensor is formed: ``3 Nv Cv h Nl`` multiply-adds instead of
        ``3 Nv h d (Cv + Nl)`` (about 20x fewer with Swin-T's fusion and a short caption).
        Exact up to float rounding. Logits are laid out ``[B, Nv, h * Nl]``.
        """
        batch, num_v, v_dim = v.shape
        num_l = l.shape[1]
        h, d = self.num_heads, self.head_dim
        key = self.l_proj(l).view(batch, num_l, h, d)
        w_q = self.v_proj.weight.view(h, d, v_dim)
        # [B, Cv, h, Nl] and [B, 1, h, Nl]: the query projection folded into the keys.
        key_q = torch.einsum("jdc,bnjd->bcjn", w_q, key).mul_(self.scale).reshape(batch, v_dim, h * num_l)
        bias_q = torch.einsum("jd,bnjd->bjn", self.v_proj.bias.view(h, d), key).mul_(self.scale)
        logits = torch.baddbmm(bias_q.reshape(batch, 1, h * num_l), v, key_q)                  # [B, Nv, h*Nl]
        probs_v, probs_l_t = self._probabilities(logits, h, pad_mask_v, pad_mask_l)
        # Image side: text values projected by out_v_proj's columns of each head, [B, h*Nl, Cv].
        value_l = self.values_l_proj(l).view(batch, num_l, h, d).transpose(1, 2)              # [B, h, Nl, d]
        w_o = self.out_v_proj.weight.view(v_dim, h, d).permute(1, 2, 0)                      # [h, d, Cv]
        value_o = torch.matmul(value_l, w_o).reshape(batch, h * num_l, v_dim)
        delta_v = torch.baddbmm(self.out_v_proj.bias, probs_v, value_o)
        # Text side: attend to the raw image tokens, then project per head.
        pooled = torch.bmm(probs_l_t, v).view(batch, h, num_l, v_dim)                         # [B, h, Nl, Cv]
        w_v = self.values_v_proj.weight.view(h, d, v_dim).transpose(1, 2)                    # [h, Cv, d]
        text = torch.matmul(pooled, w_v).transpose(1, 2).reshape(batch, num_l, h * d) + self.values_v_proj.bias
        delta_l = self.out_l_proj(text)
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
