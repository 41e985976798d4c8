"""Sine position embeddings: for image feature maps, for boxes / points and for text positions.

All use the "interleaved" layout of the original code: for a coordinate ``x``
and ``d`` features, feature ``2i`` is ``sin(x*s / T^(2i/d))`` and ``2i+1`` is
``cos(x*s / T^(2i/d))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _frequencies(num_feats: int, temperature: float, device) -> Tensor:
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)


def _interleave(angles: Tensor) -> Tensor:
    """``[..., d]`` angles -> ``[..., d]`` with sin at even and cos at odd features."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


class PositionEmbeddingSineHW(nn.Module):
    """2-D sine embedding of a feature map from its padding mask (no parameters).

    Coordinates are the cumulative count of valid pixels along each axis,
    normalised to ``(0, 2*pi]`` over the valid extent, so padding does not shift
    the embedding of real pixels. ``forward(pad_mask [B,H,W] bool, True=pad)
    -> [B, 2*num_pos_feats, H, W]`` (y features first, then x).

    Args:
        num_pos_feats: features per axis (``hidden_dim // 2``).
        temperature_h / temperature_w: TAO's ``pe_temperatureH`` / ``pe_temperatureW`` (20).
    """

    def __init__(self, num_pos_feats: int, temperature_h: float = 20.0, temperature_w: float = 20.0):
        super().__init__()
        self.num_pos_feats = int(num_pos_feats)
        self.temperature_h = float(temperature_h)
        self.temperature_w = float(temperature_w)
        self.scale = 2 * math.pi

    def forward(self, pad_mask: Tensor) -> Tensor:
        valid = ~pad_mask
        y_embed = valid.cumsum(1, dtype=torch.float32)
        x_embed = valid.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        pos_x = _interleave(x_embed[..., None] / _frequencies(self.num_pos_feats, self.temperature_w, pad_mask.device))
        pos_y = _interleave(y_embed[..., None] / _frequencies(self.num_pos_feats, self.temperature_h, pad_mask.device))
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"num_pos_feats={self.num_pos_feats}, temperature=({self.temperature_h}, {self.temperature_w})"


def sine_embed(coords: Tensor, num_pos_feats: int, temperature: float = 10000.0, swap_xy: bool = True) -> Tensor:
    """Embed each of the ``n`` coordinates of ``coords [..., n]`` -> ``[..., n*num_pos_feats]``.

    Coordinates are expected in ``[0, 1]`` (scaled by ``2*pi``). With
    ``swap_xy`` the first two blocks are exchanged, giving the ``(y, x, w, h)``
    order the decoder's query-position head was trained with.
    """
    freqs = _frequencies(num_pos_feats, temperature, coords.device)
    scale = 2 * math.pi
    blocks = [_interleave(c[..., None] * scale / freqs) for c in coords.unbind(-1)]
    if swap_xy and len(blocks) >= 2:
        blocks[0], blocks[1] = blocks[1], blocks[0]
    return torch.cat(blocks, dim=-1).to(coords.dtype)


def text_position_embedding(position_ids: Tensor, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``position_ids [B,L]`` (restarting in each phrase) -> ``[B,L,dim]`` sine embedding."""
    return sine_embed(position_ids[..., None].to(dtype), num_pos_feats=dim, swap_xy=False)
