"""Swin Transformer with the parameter names of the original Grounding DINO checkpoints
(``patch_embed.*``, ``layers.S.blocks.B.{norm1, attn.qkv, attn.relative_position_bias_table,
attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``layers.S.downsample.*``, ``norm{S}`` per returned stage).

Windows follow the original: feature maps are padded to a multiple of the window
and every other block uses shifted windows, at every resolution (transformers'
port instead disables the shift when a stage is no larger than one window).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers import DropPath
from .registry import register_backbone


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``[B,H,W,C]`` (H, W multiples of ws) -> ``[B*nW, ws*ws, C]``."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """``[B*nW, ws*ws, C]`` -> ``[B,H,W,C]``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        # Persistent, as in the original checkpoints (it is recomputable, so loaders treat it as optional).
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = float(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x [B*nW, N, C]``, ``mask [nW, N, N]`` additive (0 / -100) or None -> ``[B*nW, N, C]``."""
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)                                # [h,N,N]
        # softmax(q k^T / sqrt(d) + bias + mask) v as one fused kernel; the bias broadcasts over
        # the windows as an expanded view (no copy), the shift mask is added per window.
        if mask is None:
            attn_mask = bias[None].expand(bw, -1, -1, -1)
        else:
            nw = mask.shape[0]
            attn_mask = bias[None] + mask[:, None]                                 # [nW,h,N,N]
            if bw != nw:
                attn_mask = attn_mask[None].expand(bw // nw, -1, -1, -1, -1).reshape(bw, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype),
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(bw, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float = 4.0,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, h: int, w: int, attn_mask: Tensor) -> Tensor:
        """``x [B, h*w, C]`` -> same; ``attn_mask [nW, N, N]`` for the shifted windows."""
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        x = self.attn(window_partition(x, ws), attn_mask if shift > 0 else None)
        x = window_reverse(x, ws, hp, wp)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat + LayerNorm + linear: halves the resolution, doubles the width."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device) -> Tensor:
    """Additive mask ``[nW, ws*ws, ws*ws]`` keeping tokens that were not neighbours
    before the cyclic shift from attending to each other (-100, as the original)."""
    hp, wp = (h + ws - 1) // ws * ws, (w + ws - 1) // ws * ws
    img = torch.zeros((1, hp, wp, 1), device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    windows = window_partition(img, ws).squeeze(-1)                        # [nW, N]
    diff = windows[:, None, :] - windows[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks (alternating plain / shifted windows), then optional patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, drop: float,
                 attn_drop: float, drop_path: list[float], downsample: bool, activation_checkpoint: bool):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.activation_checkpoint = activation_checkpoint
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio,
                                 drop, attn_drop, drop_path[i]) for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, int, int]:
        """-> (stage output [B,h*w,C], input of the next stage, its h, its w)."""
        mask = shifted_window_mask(h, w, self.window_size, self.shift_size, x.device).to(x.dtype)
        for blk in self.blocks:
            if self.activation_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, h, w, mask, use_reentrant=False)
            else:
                x = blk(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        b, c, hh, ww = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view(b, c, hh, ww)


class SwinTransformer(nn.Module):
    """Swin backbone returning the stages ``out_indices`` (each LayerNorm-ed by ``norm{i}``).

    Args:
        embed_dim, depths, num_heads, window_size, mlp_ratio: the architecture.
        drop_path_rate: stochastic depth, linearly increasing over blocks (TAO: 0.2).
        dilation: drop the last patch merging so the last stage stays at stride 16.
    """

    def __init__(self, *, embed_dim: int, depths: list[int], num_heads: list[int], window_size: int,
                 out_indices: list[int], mlp_ratio: float = 4.0, patch_size: int = 4, in_chans: int = 3,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 dilation: bool = False, activation_checkpoint: bool = False):
        super().__init__()
        n = len(depths)
        self.out_indices = list(out_indices)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]   # linear, as torch.linspace
        downsample = [i < n - 1 for i in range(n)]
        num_features = [int(embed_dim * 2 ** i) for i in range(n)]
        strides = [patch_size * 2 ** i for i in range(n)]
        if dilation:  # the last stage keeps the previous stage's resolution and width
            downsample[-2] = False
            num_features[-1] = num_features[-2]
            strides[-1] = strides[-2]
        self.layers = nn.ModuleList(
            BasicLayer(num_features[i], depths[i], num_heads[i], window_size, mlp_ratio, drop_rate, attn_drop_rate,
                       dpr[sum(depths[:i]):sum(depths[:i + 1])], downsample[i], activation_checkpoint)
            for i in range(n))
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(num_features[i]))
        self.num_features = num_features
        self.num_channels = [num_features[i] for i in self.out_indices]
        self.strides = [strides[i] for i in self.out_indices]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B,3,H,W]`` -> one ``[B, C_i, H/s_i, W/s_i]`` map per returned stage."""
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        outs = []
        for i, layer in enumerate(self.layers):
            out, x, nh, nw = layer(x, h, w)
            if i in self.out_indices:
                out = getattr(self, f"norm{i}")(out)
                # [B, C, h, w] in channels-last memory: a view, no copy.
                outs.append(out.view(out.shape[0], h, w, -1).permute(0, 3, 1, 2))
            h, w = nh, nw
        return outs


#: Architectures by name. Note: TAO's swin_base_224_22k has depths [2, 2, 12, 2] (the original
#: Grounding DINO's swin_B_224_22k has 18 blocks in stage 3); we keep TAO's so TAO checkpoints
#: load. The official Swin-B Grounding DINO checkpoint is swin_base_384_22k.
SWIN_PRESETS = {
    "swin_tiny_224_1k": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "swin_base_224_22k": dict(embed_dim=128, depths=[2, 2, 12, 2], num_heads=[4, 8, 16, 32], window_size=7),
    "swin_base_384_22k": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12),
    "swin_large_224_22k": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=7),
    "swin_large_384_22k": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12),
    "swin_nano": dict(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=7),
}
_DESCRIPTIONS = {
    "swin_tiny_224_1k": "Swin-T, window 7 (TAO default)",
    "swin_base_224_22k": "Swin-B, window 7, TAO's depths",
    "swin_base_384_22k": "Swin-B, window 12",
    "swin_large_224_22k": "Swin-L, window 7",
    "swin_large_384_22k": "Swin-L, window 12",
    "swin_nano": "narrow Swin (width 32, depths 1-1-2-1) for CPU runs",
}


def _swin(name: str):
    def build(out_indices, dilation=False, activation_checkpoint=False, **overrides):
        args = dict(SWIN_PRESETS[name], drop_path_rate=0.1 if name == "swin_nano" else 0.2)
        args.update(overrides)
        return SwinTransformer(out_indices=out_indices, dilation=dilation,
                               activation_checkpoint=activation_checkpoint, **args)
    return build


for _name in SWIN_PRESETS:
    register_backbone(_name, "swin", _DESCRIPTIONS[_name], small=_name == "swin_nano")(_swin(_name))
