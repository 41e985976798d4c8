"""Small building blocks shared by the encoder, decoder and heads.

Parameter names follow the original Grounding DINO state dict, e.g. an MLP
keeps its linears in ``layers.N`` and attention keeps the packed
``in_proj_weight`` / ``in_proj_bias`` / ``out_proj`` of ``nn.MultiheadAttention``,
so official and TAO checkpoints load by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 - x))`` with numerator and denominator floored at ``eps``.

    ``eps=1e-5`` is TAO's value (its decoder refinement, query selection and denoising
    queries) and transformers'; the original Grounding DINO release used 1e-3. The model
    carries ``eps`` as a setting (``ref_eps``), so a model saved with another value keeps it.
    """
    x = x.clamp(min=0.0, max=1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


class MLP(nn.Module):
    """``num_layers`` linears with ReLU between them: ``[..., in] -> [..., out]``."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.relu(x)
        return x


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def additive_mask(blocked: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask (True = blocked) -> float mask to add to attention scores.

    Uses the dtype's most negative finite value rather than ``-inf`` so a row
    that is fully blocked yields a uniform (finite) softmax instead of NaN.
    """
    zeros = torch.zeros((), dtype=dtype, device=blocked.device)
    return torch.where(blocked, torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=blocked.device), zeros)


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``nn.MultiheadAttention``'s parameter names.

    Args:
        embed_dim: model width C.
        num_heads: heads (C must divide evenly).
        dropout: dropout on the attention probabilities while training.

    ``forward(query [B,Lq,C], key [B,Lk,C], value [B,Lk,C], attn_mask=None,
    key_padding_mask=None) -> [B,Lq,C]`` where ``attn_mask`` is bool
    ``[B,Lq,Lk]`` or ``[B,H,Lq,Lk]`` (True = may NOT attend) and
    ``key_padding_mask`` is bool ``[B,Lk]`` (True = padding).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.embed_dim // self.num_heads).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        blocked = None
        if attn_mask is not None:
            blocked = attn_mask if attn_mask.dim() == 4 else attn_mask[:, None]
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]
            blocked = pad if blocked is None else (blocked | pad)
        # Explicit softmax attention (not SDPA): the same operation order as the reference
        # implementations, so results agree to fp32 rounding; the matrices here are small.
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if blocked is not None:
            scores = scores + additive_mask(blocked, scores.dtype)
        probs = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
        out = torch.matmul(probs, v)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.embed_dim))


def set_activation_checkpoint(module: nn.Module, enabled: bool) -> None:
    """Switch activation checkpointing on or off in every block of ``module`` that supports it
    (backbone stages, encoder and decoder layers): their ``activation_checkpoint`` flag."""
    for m in module.modules():
        if hasattr(m, "activation_checkpoint"):
            m.activation_checkpoint = bool(enabled)
