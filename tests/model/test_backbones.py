"""Every registered backbone: forward, backward, no NaNs, activation checkpointing
changes nothing; the registry agrees with the spec's list; preset sizes are right."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.config.model import BACKBONES
from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.backbones import build_backbone, get_backbone_entry, list_backbones
from mask_grounding_dino.model.layers import set_activation_checkpoint

#: Large Swins are exercised with one block per stage: widths, heads and window are the
#: preset's (what the parameter names and shapes depend on); the depth is only a loop count.
#: Their full depth is checked by parameter count below, on the meta device (no compute).
SHALLOW = {"swin_base_224_22k", "swin_base_384_22k", "swin_large_224_22k", "swin_large_384_22k"}


def _build(name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    overrides = {"depths": [1, 1, 1, 1]} if name in SHALLOW else {}
    return build_backbone(name, out_indices=[1, 2, 3], **overrides, **kwargs)


def test_registry_matches_spec_backbones():
    assert set(list_backbones()) == set(BACKBONES)


def test_small_presets_are_flagged():
    assert {n for n in list_backbones() if get_backbone_entry(n).small} == {"resnet_18", "resnet_tiny", "swin_nano"}


def test_unknown_backbone_is_a_spec_error():
    with pytest.raises(SpecError, match="model.backbone: 'swin_t'.*allowed"):
        build_backbone("swin_t", out_indices=[1, 2, 3])


@pytest.mark.parametrize("name", list_backbones())
def test_forward_backward_and_checkpointing(name):
    x = torch.randn(1, 3, 64, 96)
    model = _build(name).train()
    outs = []
    for checkpointing in (False, True):
        set_activation_checkpoint(model, checkpointing)
        model.zero_grad()
        torch.manual_seed(1)   # same stochastic-depth draws in both runs
        feats = model(x)
        loss = sum((f * torch.linspace(-1, 1, f.numel()).view_as(f)).sum() for f in feats)
        loss.backward()
        outs.append(([f.detach() for f in feats],
                     {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (feats, grads), (feats_ck, grads_ck) = outs
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in feats] == model.num_channels and model.strides == [8, 16, 32]
    assert all(torch.isfinite(f).all() for f in feats)
    # Every trainable parameter receives a gradient (the stage-0 norm of a stage we do not return excepted).
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(grads) == trainable
    # Checkpointing recomputes the same operations: equal up to fp32 rounding.
    for f, g in zip(feats, feats_ck):
        torch.testing.assert_close(f, g, rtol=1e-5, atol=1e-5)
    assert grads.keys() == grads_ck.keys()
    for key in grads:
        torch.testing.assert_close(grads[key], grads_ck[key], rtol=1e-4, atol=1e-5, msg=key)


# Published backbone sizes (ImageNet models minus their classifier head), in millions.
@pytest.mark.parametrize("name, millions", [("swin_tiny_224_1k", 27.5), ("swin_base_384_22k", 86.9),
                                            ("swin_large_224_22k", 195.0), ("swin_large_384_22k", 195.2),
                                            ("resnet_50", 23.5), ("resnet_18", 11.2)])
def test_preset_sizes(name, millions):
    with torch.device("meta"):
        model = build_backbone(name, out_indices=[1, 2, 3])
    # Our per-stage output norms add ~0.01 M; 1 % covers them and rounding of the published figure.
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, rel=0.01)


def test_tao_swin_base_224_keeps_tao_depths():
    with torch.device("meta"):
        model = build_backbone("swin_base_224_22k", out_indices=[1, 2, 3])
    assert [len(layer.blocks) for layer in model.layers] == [2, 2, 12, 2]


@pytest.mark.parametrize("name", ["resnet_tiny", "swin_nano"])
def test_dilation_keeps_the_last_stage_at_stride_16(name):
    model = _build(name, dilation=True).eval()
    feats = model(torch.randn(1, 3, 64, 96))
    assert model.strides == [8, 16, 16]
    assert tuple(feats[-1].shape[-2:]) == (4, 6)


def test_stage_selection_and_odd_sizes():
    model = _build("swin_nano").eval()
    model_all = build_backbone("swin_nano", out_indices=[0, 1, 2, 3]).eval()
    assert model_all.strides == [4, 8, 16, 32]
    # Odd sizes: patches and windows are padded internally; maps round up.
    feats = model(torch.randn(1, 3, 70, 101))
    assert [tuple(f.shape[-2:]) for f in feats] == [(9, 13), (5, 7), (3, 4)]


def test_bad_stage_indices_are_rejected():
    with pytest.raises(SpecError, match="return_interm_indices"):
        build_backbone("resnet_tiny", out_indices=[3, 1])


def test_resnet50_freezes_like_the_original():
    model = _build("resnet_50")
    frozen = {n.split(".")[1] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "layer1"}            # frozen BatchNorm has buffers, not parameters
    assert not any("bn" in n for n, _ in model.named_parameters())
