"""Pieces of the transformer: attention, fusion, position embeddings, query selection,
the contrastive head and the decoder's box refinement."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.decoder import TransformerDecoder
from mask_grounding_dino.model.encoder import encoder_reference_points
from mask_grounding_dino.model.fusion import BiAttentionBlock
from mask_grounding_dino.model.heads import BIAS_INIT, ContrastiveEmbed, parse_log_scale
from mask_grounding_dino.model.layers import MLP, MultiheadAttention, inverse_sigmoid
from mask_grounding_dino.model.position_encoding import PositionEmbeddingSineHW, sine_embed
from mask_grounding_dino.model.query_selection import encoder_proposals, select_topk


def test_attention_equals_torch_multihead_attention():
    """Same packed parameters as ``nn.MultiheadAttention`` (the original's module), same result."""
    torch.manual_seed(0)
    ours = MultiheadAttention(16, 4).eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ref.load_state_dict(ours.state_dict())
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    blocked = torch.rand(2, 5, 7) > 0.6
    blocked[..., 0] = False                                   # every query sees at least one key
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    out = ours(q, kv, kv, attn_mask=blocked, key_padding_mask=pad)
    expected = ref(q, kv, kv, attn_mask=blocked.repeat_interleave(4, 0), key_padding_mask=pad,
                   need_weights=False)[0]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_bi_attention_ignores_padding():
    torch.manual_seed(0)
    block = BiAttentionBlock(16, 16, 32, 2).eval()
    v, l = torch.randn(1, 6, 16), torch.randn(1, 4, 16)
    pad_v = torch.tensor([[False] * 5 + [True]])
    pad_l = torch.tensor([[False, False, True, True]])
    v2, l2 = v.clone(), l.clone()
    v2[0, 5] += 10.0      # change only padded tokens
    l2[0, 2:] -= 10.0
    out_v, out_l = block(v, l, pad_v, pad_l)
    out_v2, out_l2 = block(v2, l2, pad_v, pad_l)
    torch.testing.assert_close(out_v[0, :5], out_v2[0, :5])
    torch.testing.assert_close(out_l[0, :2], out_l2[0, :2])


def test_image_position_embedding_is_normalised_over_the_valid_area():
    pe = PositionEmbeddingSineHW(8, 20, 20)
    padded = torch.zeros(1, 6, 9, dtype=torch.bool)
    padded[:, :, 7:] = True
    padded[:, 4:, :] = True
    plain = torch.zeros(1, 4, 7, dtype=torch.bool)
    torch.testing.assert_close(pe(padded)[..., :4, :7], pe(plain))
    assert pe(plain).shape == (1, 16, 4, 7)


def test_sine_embed_layout():
    emb = sine_embed(torch.tensor([[0.25, 0.5]]), num_pos_feats=4)
    # (y block, x block); feature 0 = sin(2*pi*c), feature 1 = cos(2*pi*c) at the first frequency.
    assert emb.shape == (1, 8)
    torch.testing.assert_close(emb[0, :2], torch.tensor([math.sin(math.pi), math.cos(math.pi)]))
    torch.testing.assert_close(emb[0, 4:6], torch.tensor([math.sin(math.pi / 2), math.cos(math.pi / 2)]))


def test_encoder_reference_points_are_cell_centres():
    ratios = torch.ones(1, 2, 2)
    refs = encoder_reference_points([(2, 4), (1, 2)], ratios)
    assert refs.shape == (1, 10, 2, 2)
    torch.testing.assert_close(refs[0, :4, 0], torch.tensor([[0.125, 0.25], [0.375, 0.25], [0.625, 0.25],
                                                             [0.875, 0.25]]))


def test_proposals_mark_padding_and_borders():
    memory = torch.randn(1, 8 * 8, 4)
    pad = torch.zeros(1, 8, 8, dtype=torch.bool)
    pad[:, :, 6:] = True
    out, proposals = encoder_proposals(memory, pad.flatten(1), [(8, 8)])
    pad = pad.flatten(1)
    assert torch.isinf(proposals[pad]).all() and (out[pad] == 0).all()
    # Valid cell (row 3, col 2): centre ((2+0.5)/6, (3+0.5)/8), size 0.05, in logit space.
    expected = inverse_sigmoid(torch.tensor([2.5 / 6, 3.5 / 8, 0.05, 0.05]), eps=0)
    torch.testing.assert_close(proposals[0, 3 * 8 + 2], expected)


def test_select_topk_orders_and_pads_when_there_are_few_tokens():
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    boxes = torch.arange(12.0).view(1, 3, 4)
    sel = select_topk(scores, boxes, boxes, boxes, k=3)
    assert sel.index.tolist() == [[1, 2, 0]]
    sel = select_topk(scores, boxes, boxes, boxes, k=5)   # two more queries than tokens
    assert sel.index.shape == (1, 5) and sel.boxes_unsig.shape == (1, 5, 4)


def test_contrastive_head_masks_and_pads():
    head = ContrastiveEmbed(max_text_len=6)
    q, t = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    logits = head(q, t, mask)
    assert logits.shape == (2, 3, 6)
    torch.testing.assert_close(logits[0, :, :3], q[0] @ t[0, :3].T)
    assert torch.isinf(logits[0, :, 3:]).all() and torch.isinf(logits[1, :, 2:]).all()


def test_contrastive_head_bias_and_scales():
    q, t, mask = torch.randn(1, 2, 16), torch.randn(1, 3, 16), torch.ones(1, 3, dtype=torch.bool)
    raw = q @ t.transpose(1, 2)
    assert BIAS_INIT == pytest.approx(-4.595, abs=1e-3)
    torch.testing.assert_close(ContrastiveEmbed(3, bias=True)(q, t, mask), raw + BIAS_INIT)
    torch.testing.assert_close(ContrastiveEmbed(3, log_scale="auto")(q, t, mask), raw / 4.0)
    learned = ContrastiveEmbed(3, log_scale="0.5")
    torch.testing.assert_close(learned(q, t, mask), raw * math.exp(0.5))
    assert learned.log_scale.requires_grad
    assert parse_log_scale("none") is None and parse_log_scale(None) is None
    with pytest.raises(SpecError, match="model.log_scale"):
        parse_log_scale("big")


def test_decoder_refines_boxes_and_looks_forward_twice():
    torch.manual_seed(0)
    dec = TransformerDecoder(2, d_model=16, d_ffn=32, n_levels=1, n_heads=2, n_points=2)
    heads = [MLP(16, 16, 4, 3), MLP(16, 16, 4, 3)]
    dec.bbox_embed = nn.ModuleList(heads)

    def run():
        torch.manual_seed(1)
        memory, text = torch.randn(1, 12, 16), torch.randn(1, 3, 16)
        return dec(torch.randn(1, 5, 16), memory, memory_pad_mask=torch.zeros(1, 12, dtype=torch.bool),
                   refpoints_unsigmoid=torch.randn(1, 5, 4), spatial_shapes=torch.tensor([[3, 4]]),
                   level_start_index=torch.tensor([0]), valid_ratios=torch.ones(1, 1, 2), memory_text=text,
                   text_pad_mask=torch.zeros(1, 3, dtype=torch.bool))

    out = run()
    assert len(out.hidden) == 2 and len(out.references) == 3
    assert all(((r > 0) & (r < 1)).all() for r in out.references)
    # The next layer receives a detached reference: layer 1's features do not train layer 0's box head...
    out.hidden[1].sum().backward()
    assert heads[0].layers[-1].weight.grad is None
    # ...but layer 1's box prediction does, through the (undetached) reference it refines ("look forward twice").
    out = run()
    boxes_1 = (heads[1](out.hidden[1]) + inverse_sigmoid(out.references[1])).sigmoid()
    boxes_1.sum().backward()
    assert heads[0].layers[-1].weight.grad.abs().sum() > 0


def test_inverse_sigmoid_clamps_at_tao_value():
    # TAO (deformable_detr utils) clamps numerator and denominator at 1e-5: log(1e-5) = -11.5129...
    x = torch.tensor([0.0, 1.0, 0.5, 1e-7])
    out = inverse_sigmoid(x)
    expected = torch.tensor([math.log(1e-5), -math.log(1e-5), 0.0, math.log(1e-5 / (1 - 1e-7))])
    torch.testing.assert_close(out, expected)   # default float32 tolerances: values of order 10
    import inspect

    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO
    from mask_grounding_dino.model.transformer import Transformer

    for cls in (TransformerDecoder, Transformer, MaskGroundingDINO):   # the box refinement's clamp
        assert inspect.signature(cls.__init__).parameters["ref_eps"].default == 1e-5, cls
