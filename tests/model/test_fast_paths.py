"""Speed rewrites that must compute the same function: the fusion's reordered projections and
softmax shortcut, the Swin window attention through SDPA, the unpadded class scores and the
channels-last image features. Checked in float64 against the straightforward formulation."""

from __future__ import annotations

import math

import pytest
import torch

from mask_grounding_dino.model.backbones.swin import WindowAttention, shifted_window_mask, window_partition
from mask_grounding_dino.model.fusion import BiMultiHeadAttention
from mask_grounding_dino.model.heads import ContrastiveEmbed
from mask_grounding_dino.model.presets import build_preset


def _fusion(v_dim, embed, heads, seed=0):
    torch.manual_seed(seed)
    attn = BiMultiHeadAttention(v_dim, v_dim, embed, heads).double()
    for p in attn.parameters():              # the init zeroes biases: use generic weights
        torch.nn.init.normal_(p, std=0.1)
    return attn


def _fusion_run(fn, attn, v, l, pad_v, pad_l):
    v, l = v.clone().requires_grad_(), l.clone().requires_grad_()
    dv, dl = fn(v, l, pad_v, pad_l)
    probe = torch.linspace(-1, 1, dv.numel(), dtype=dv.dtype).view_as(dv)
    loss = (dv * probe).sum() + dl.square().sum()
    return [dv, dl] + list(torch.autograd.grad(loss, [v, l] + list(attn.parameters())))


@pytest.mark.parametrize("scale", [1.0, 3e3])       # 3e3: logits span > 50000, the clamp acts
@pytest.mark.parametrize("v_dim,embed,heads,text", [(32, 64, 4, 7), (24, 96, 4, 5)])
def test_reordered_fusion_equals_the_projected_original(v_dim, embed, heads, text, scale):
    attn = _fusion(v_dim, embed, heads)
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(3, 30, v_dim, generator=gen, dtype=torch.float64) * scale
    l = torch.randn(3, text, v_dim, generator=gen, dtype=torch.float64)
    pad_v = torch.zeros(3, 30, dtype=torch.bool)
    pad_v[1, -7:] = True
    pad_l = torch.zeros(3, text, dtype=torch.bool)
    pad_l[2, -2:] = True
    assert attn._reorder_pays(v_dim, text)
    got = _fusion_run(attn._forward_reordered, attn, v, l, pad_v, pad_l)
    want = _fusion_run(attn._forward_projected, attn, v, l, pad_v, pad_l)
    # float64 with reassociated sums: rounding ~1e-16 of the largest quantities in the pass. With
    # saturated softmaxes (scale 3e3) some gradients are ~0 and carry that absolute rounding, so
    # the tolerance follows the largest gradient of the pass, not each tensor's own size.
    scale = max(ref.abs().max().item() for ref in want)
    for ours, ref in zip(got, want):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12 * scale)


def test_fusion_without_padding_masks_or_with_none():
    attn = _fusion(32, 64, 4, seed=2)
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(2, 20, 32, generator=gen, dtype=torch.float64)
    l = torch.randn(2, 6, 32, generator=gen, dtype=torch.float64)
    none = _fusion_run(attn._forward_reordered, attn, v, l, None, None)
    zeros = _fusion_run(attn._forward_reordered, attn, v, l, torch.zeros(2, 20, dtype=torch.bool),
                        torch.zeros(2, 6, dtype=torch.bool))
    want = _fusion_run(attn._forward_projected, attn, v, l, None, None)
    for a, b, ref in zip(none, zeros, want):
        torch.testing.assert_close(a, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(b, ref, rtol=0, atol=1e-12)


def test_reorder_rule_follows_the_multiply_add_count():
    attn = BiMultiHeadAttention(128, 128, 256, 4)            # head dim 64
    assert attn._reorder_pays(128, 38) and attn._reorder_pays(128, 128)
    assert not attn._reorder_pays(128, 129)
    # Swin-T's fusion (width 256, 1024 wide, 4 heads): reordering always pays.
    assert BiMultiHeadAttention(256, 256, 1024, 4)._reorder_pays(256, 256)


def test_unpadded_class_logits_are_the_leading_columns():
    head = ContrastiveEmbed(max_text_len=16, log_scale="auto", bias=True)
    queries, text = torch.randn(2, 5, 8), torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    full = head(queries, text, mask)
    short = head(queries, text, mask, pad=False)
    assert full.shape == (2, 5, 16) and short.shape == (2, 5, 6)
    torch.testing.assert_close(short, full[..., :6], rtol=0, atol=0)
    assert torch.equal(short.max(-1).values, full.max(-1).values)


def _window_attention_reference(attn: WindowAttention, x, mask):
    """The explicit formulation: softmax(q k^T / sqrt(d) + bias (+ mask)) v."""
    bw, n, c = x.shape
    qkv = attn.qkv(x).view(bw, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias[None]
    if mask is not None:
        nw = mask.shape[0]
        scores = (scores.view(bw // nw, nw, attn.num_heads, n, n) + mask[None, :, None]).view(bw, -1, n, n)
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(bw, n, c))


@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_through_sdpa_equals_the_explicit_softmax(shifted):
    torch.manual_seed(0)
    attn = WindowAttention(dim=12, window_size=3, num_heads=3).double()
    torch.nn.init.normal_(attn.relative_position_bias_table, std=0.5)
    # Two images of 6x9 pixels: 2 x 6 windows of 3x3.
    image = torch.randn(2, 6, 9, 12, dtype=torch.float64)
    windows = window_partition(image, 3)
    mask = shifted_window_mask(6, 9, 3, 1, "cpu").double() if shifted else None
    torch.testing.assert_close(attn(windows, mask), _window_attention_reference(attn, windows, mask),
                               rtol=0, atol=1e-12)


def test_shift_mask_pads_odd_sizes_up_to_whole_windows():
    assert shifted_window_mask(7, 8, 3, 1, "cpu").shape == (3 * 3, 9, 9)   # 7x8 -> 9x9 padded


def test_channels_last_features_give_the_same_model_outputs():
    """The model keeps backbone maps channels-last (NHWC convolutions); the same weights with
    every 4-D tensor contiguous must give the same outputs (float64: rounding only)."""
    torch.manual_seed(0)
    model = build_preset("tiny").double().eval()
    plain = build_preset("tiny").double().eval()
    plain.load_state_dict(model.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    assert model.backbone[0].body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    from mask_grounding_dino.text import TextProcessor
    text = TextProcessor("bert-base-uncased", 256)(["a cat . a dog ."])
    images = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        got, want = model(images, *text.as_tuple()), plain(images, *text.as_tuple())
    for name in ("pred_logits", "pred_boxes", "pred_masks"):
        a, b = getattr(got, name), getattr(want, name)
        finite = torch.isfinite(b)
        assert torch.equal(torch.isfinite(a), finite), name
        torch.testing.assert_close(a[finite], b[finite], rtol=0, atol=1e-10)


def test_token_flattening_is_layout_independent():
    from mask_grounding_dino.model.transformer import _tokens
    x = torch.randn(2, 5, 3, 4)
    want = x.flatten(2).transpose(1, 2)
    assert torch.equal(_tokens(x), want)
    assert torch.equal(_tokens(x.contiguous(memory_format=torch.channels_last)), want)


def test_sdpa_handles_a_batch_of_images_with_the_shift_mask():
    """B > 1: the per-window shift mask repeats for every image."""
    torch.manual_seed(1)
    attn = WindowAttention(dim=8, window_size=2, num_heads=2).double()
    image = torch.randn(3, 4, 4, 8, dtype=torch.float64)
    windows = window_partition(image, 2)                                  # [3*4, 4, 8]
    mask = shifted_window_mask(4, 4, 2, 1, "cpu").double()
    got = attn(windows, mask)
    want = _window_attention_reference(attn, windows, mask)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
