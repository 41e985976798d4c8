"""Contrastive denoising queries: layout, noise bounds, isolation from the ordinary queries."""

from __future__ import annotations

import torch
from torch import nn

from mask_grounding_dino.model.denoising import build_denoising_queries

TARGETS = [
    {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.1]]), "labels": torch.tensor([0, 2])},
    {"boxes": torch.tensor([[0.4, 0.4, 0.3, 0.3]]), "labels": torch.tensor([1])},
]


def _build(targets=TARGETS, groups=4, label_noise=0.0, box_noise=1.0, queries=5):
    torch.manual_seed(0)
    return build_denoising_queries(targets, num_groups=groups, label_noise_ratio=label_noise,
                                   box_noise_scale=box_noise, num_queries=queries, num_labels=8,
                                   label_enc=nn.Embedding(9, 16))


def _xyxy(b):
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def test_layout_and_attention_mask():
    prefix, meta = _build()
    # 4 positives per image wanted, at most 2 boxes per image -> 2 groups of (2 pos + 2 neg) slots.
    assert (meta.num_groups, meta.group_size, meta.pad_size) == (2, 2, 8)
    assert prefix.tgt.shape == (2, 8, 16) and prefix.refpoints_unsig.shape == (2, 8, 4)
    blocked = prefix.attn_mask
    assert blocked.shape == (13, 13)
    assert blocked[8:, :8].all() and not blocked[8:, 8:].any()       # selected queries never see them
    assert not blocked[:8, 8:].any()                                  # they may see the selected queries
    assert not blocked[:4, :4].any() and blocked[:4, 4:8].all() and blocked[4:8, :4].all()
    query, target = meta.positive_pairs(0)
    assert query.tolist() == [0, 1, 4, 5] and target.tolist() == [0, 1, 0, 1]
    assert meta.negative_queries(1).tolist() == [2, 6]
    # Image 1 has one box: its unused slots stay empty.
    assert (prefix.tgt[1, [1, 3, 5, 7]] == 0).all()


def test_noise_bounds():
    prefix, meta = _build(box_noise=0.5)
    gt = _xyxy(TARGETS[0]["boxes"])
    half = torch.cat([TARGETS[0]["boxes"][:, 2:], TARGETS[0]["boxes"][:, 2:]], -1) / 2
    noised = _xyxy(prefix.refpoints_unsig[0].sigmoid())
    pos, target = meta.positive_pairs(0)
    neg = meta.negative_queries(0)
    shift_pos = (noised[pos] - gt[target]).abs() / half[target]
    shift_neg = (noised[neg] - gt[target]).abs() / half[target]
    # Corners move by less than half a box size (x scale 0.5) for positives; by 0.5 to 1 for negatives
    # (clamping to the image can only shorten a move). 1e-3 covers the inverse sigmoid's clamp (1e-5)
    # and float32 rounding of the sigmoid round trip.
    assert (shift_pos <= 0.5 + 1e-3).all()
    unclamped = (noised[neg] > 1e-3) & (noised[neg] < 1 - 1e-3)
    assert (shift_neg[unclamped] >= 0.5 - 1e-3).all() and (shift_neg <= 1.0 + 1e-3).all()


def test_content_is_the_label_embedding():
    torch.manual_seed(0)
    enc = nn.Embedding(9, 16)
    prefix, _ = build_denoising_queries(TARGETS, num_groups=4, label_noise_ratio=0.0, box_noise_scale=1.0,
                                        num_queries=5, num_labels=8, label_enc=enc)
    torch.testing.assert_close(prefix.tgt[0, 1], enc.weight[2])       # box 1 of image 0 has phrase 2
    torch.testing.assert_close(prefix.tgt[1, 0], enc.weight[1])
    # With label noise, some copies get another phrase's embedding.
    torch.manual_seed(0)
    noisy, _ = build_denoising_queries(TARGETS * 8, num_groups=40, label_noise_ratio=1.0, box_noise_scale=1.0,
                                       num_queries=5, num_labels=8, label_enc=enc)
    assert not torch.equal(noisy.tgt[0, 1::2][:20], enc.weight[2].expand(20, -1))


def test_no_boxes_means_no_denoising():
    assert _build(targets=[{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]) == (None, None)


def test_denoising_leaves_the_ordinary_predictions_unchanged(gd):
    """The mask keeps the selected queries blind to the denoising ones: same predictions."""
    x, mask = gd.images(2, 64, 96, pad_right=16)
    plain = gd.tiny_model(fusion_droppath=0.0).train()
    with_dn = gd.tiny_model(fusion_droppath=0.0, dn_number=4).train()
    missing, unexpected = with_dn.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["label_enc.weight"] and not unexpected
    ti = gd.text_inputs(["red circle . blue square .", "a cat ."])
    torch.manual_seed(1)    # same BERT dropout draws (they happen before the denoising noise)
    a = plain(x, *ti.as_tuple(), pixel_mask=mask)
    torch.manual_seed(1)
    b = with_dn(x, *ti.as_tuple(), pixel_mask=mask, targets=TARGETS)
    torch.testing.assert_close(a.pred_logits, b.pred_logits)
    torch.testing.assert_close(a.pred_boxes, b.pred_boxes)
    assert len(b.dn_outputs) == 2 and b.dn_outputs[-1].pred_boxes.shape == (2, 8, 4)
    assert b.dn_meta.num_groups == 2 and a.dn_outputs == [] and a.dn_meta is None
    # The denoising predictions train the label embeddings.
    logits = b.dn_outputs[-1].pred_logits
    logits[logits.isfinite()].sum().backward()
    assert with_dn.label_enc.weight.grad.abs().sum() > 0


def test_tao_default_has_no_denoising(gd):
    model = gd.tiny_model(use_dn=True, dn_number=0)
    assert not hasattr(model, "label_enc") and model.dn_number == 0
