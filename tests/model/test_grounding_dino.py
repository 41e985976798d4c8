"""The whole model on the tiny preset: outputs (TAO names and shapes), training extras,
split entry points, batching, checkpointing, spec handling."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO
from mask_grounding_dino.model.layers import set_activation_checkpoint
from mask_grounding_dino.model.outputs import GroundingOutputs
from mask_grounding_dino.model.presets import TINY_TEXT_CONFIG, preset_config

CAPTIONS = ["red circle . blue square .", "a cat ."]


@pytest.fixture(scope="module")
def model(gd):
    return gd.tiny_model()


def test_eval_outputs_have_tao_names_and_shapes(gd, model):
    x, mask = gd.images(2, 96, 128, pad_right=32)
    with torch.no_grad():
        out = gd.run(model.eval(), x, mask, CAPTIONS)
    assert isinstance(out, GroundingOutputs)
    shapes = {k: tuple(v.shape) for k, v in out.as_tao_dict().items()}
    assert shapes == {"pred_logits": (2, 20, 256), "pred_boxes": (2, 20, 4), "pred_masks": (2, 20, 1, 24, 32),
                      "no_targets": (2, 2), "union_mask_logits": (2, 2, 12, 16)}
    assert ((out.pred_boxes >= 0) & (out.pred_boxes <= 1)).all()
    # Logits are finite exactly at the caption's tokens (padding and positions past it: -inf).
    lengths = gd.text_inputs(CAPTIONS).attention_mask.sum(1)
    assert out.text_mask.sum(1).tolist() == lengths.tolist()
    assert torch.equal(torch.isfinite(out.pred_logits), out.text_mask[:, None].expand(-1, 20, -1))
    assert out.aux_outputs == [] and out.mask_fn is None and out.input_size == (96, 128)


def test_training_outputs(gd, model):
    x, mask = gd.images(2, 96, 128, pad_right=32)
    model.train()
    out = gd.run(model, x, mask, CAPTIONS)
    model.eval()
    assert len(out.aux_outputs) == 1                                   # dec_layers - 1
    assert out.aux_outputs[0].pred_logits.shape == (2, 20, 256)
    assert out.enc_outputs.pred_boxes.shape == (2, 20, 4) and out.pred_masks is None
    assert out.minimap.shape == (2, 8, 2)
    masks = out.mask_fn(0, torch.tensor([0, 1, 1]), torch.tensor([3, 0, 19]))
    assert masks.shape == (3, 24, 32)
    last = out.mask_fn(-1, torch.tensor([1]), torch.tensor([4]))
    assert last.shape == (1, 24, 32)
    assert out.mask_fn(1, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 24, 32)


def test_every_parameter_learns(gd):
    model = gd.tiny_model(class_embed_bias=True, log_scale=0.0).train()
    x, mask = gd.images(2, 64, 96, pad_bottom=16)
    out = gd.run(model, x, mask, CAPTIONS)
    finite = [p.pred_logits[p.pred_logits.isfinite()] for p in [out, *out.aux_outputs, out.enc_outputs]]
    loss = sum(f.sigmoid().sum() for f in finite)
    loss = loss + sum(p.pred_boxes.sum() for p in [out, *out.aux_outputs, out.enc_outputs])
    loss = loss + out.mask_fn(0, torch.tensor([0]), torch.tensor([1])).sum()
    loss = loss + out.mask_fn(1, torch.tensor([1]), torch.tensor([2])).sum()
    loss = loss + out.no_targets.sum() + out.union_mask_logits.sum() + out.minimap.sum()
    loss.backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert all(n.startswith("bert.pooler.") for n in frozen)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_split_entry_points_equal_forward(gd, model):
    model.eval()
    x, mask = gd.images(2, 96, 128, pad_right=32)
    ti = gd.text_inputs(["red circle . blue square ."])          # one caption for both images
    with torch.no_grad():
        image = model.encode_image(x, mask)
        text = model.encode_text(*ti.as_tuple())                 # batch 1, broadcast to 2 images
        split = model.forward_features(image, text)
        two = gd.text_inputs(["red circle . blue square ."] * 2)
        full = model(x, *two.as_tuple(), pixel_mask=mask)
    torch.testing.assert_close(split.pred_logits, full.pred_logits)
    torch.testing.assert_close(split.pred_boxes, full.pred_boxes)
    torch.testing.assert_close(split.pred_masks, full.pred_masks)


def test_batching_does_not_change_an_image_s_detections(gd, model):
    """Image 0 alone vs beside another image (another caption, longer text padding)."""
    model.eval()
    x, mask = gd.images(2, 96, 128, pad_right=40, pad_bottom=24)
    with torch.no_grad():
        pair = gd.run(model, x, mask, ["a cat .", "red circle . blue square . green triangle ."])
        alone = gd.run(model, x[:1], mask[:1], ["a cat ."])
    # fp32 rounding only (different padding lengths change reduction sizes).
    for name in ("pred_logits", "pred_boxes", "pred_masks"):
        a, b = getattr(alone, name)[0], getattr(pair, name)[0]
        finite = torch.isfinite(a)
        assert torch.equal(finite, torch.isfinite(b))
        torch.testing.assert_close(a[finite], b[finite], rtol=1e-4, atol=1e-4, msg=name)


def test_activation_checkpointing_changes_nothing(gd):
    model = gd.tiny_model(backbone="swin_nano").train()
    x, mask = gd.images(1, 64, 96, pad_right=16)
    results = []
    for enabled in (False, True):
        set_activation_checkpoint(model, enabled)
        model.zero_grad()
        torch.manual_seed(3)             # identical drop-path draws
        out = gd.run(model, x, mask, CAPTIONS[:1])
        loss = out.pred_boxes.sum() + out.pred_logits[out.pred_logits.isfinite()].sum()
        loss = loss + out.mask_fn(1, torch.tensor([0]), torch.tensor([2])).sum()
        loss.backward()
        results.append((out.pred_boxes.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                  if p.grad is not None}))
    (boxes, grads), (boxes_ck, grads_ck) = results
    assert any(getattr(m, "activation_checkpoint", False) for m in model.modules())
    torch.testing.assert_close(boxes, boxes_ck)
    assert grads.keys() == grads_ck.keys()
    for name in grads:   # recomputation in the backward pass: equal up to fp32 rounding
        torch.testing.assert_close(grads[name], grads_ck[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5, 6])
def test_encoder_and_decoder_depths(gd, layers):
    model = gd.tiny_model(enc_layers=layers, dec_layers=layers, has_mask=False).train()
    x, mask = gd.images(1, 64, 64)
    out = gd.run(model, x, mask, CAPTIONS[:1])
    assert len(out.aux_outputs) == layers - 1 and out.pred_masks is None
    assert len(model.transformer.encoder.layers) == layers and len(model.transformer.decoder.layers) == layers


def test_odd_input_sizes(gd, model):
    x, mask = gd.images(1, 100, 130)
    with torch.no_grad():
        out = gd.run(model.eval(), x, mask, CAPTIONS[:1])
    assert out.pred_masks.shape[-2:] == (26, 34)       # stride-8 maps are rounded up, masks are x2
    assert out.union_mask_logits.shape[-2:] == (13, 17)


def test_two_stage_no_and_detection_only(gd):
    model = gd.tiny_model(two_stage_type="no", has_mask=False).eval()
    x, mask = gd.images(1, 64, 64)
    with torch.no_grad():
        out = gd.run(model, x, mask, CAPTIONS[:1])
    assert out.pred_boxes.shape == (1, 20, 4) and out.pred_masks is None and out.no_targets is None
    assert "transformer.refpoint_embed.weight" in model.state_dict()


def test_from_config_reads_the_spec_section():
    from mask_grounding_dino.config.model import ModelConfig

    cfg = ModelConfig(backbone="resnet_tiny", hidden_dim=32, nheads=4, enc_layers=1, dec_layers=1,
                      dim_feedforward=64, num_queries=10, num_region_queries=0, pretrained_backbone_path="")
    model = MaskGroundingDINO.from_config(cfg, text_encoder_config=TINY_TEXT_CONFIG, activation_checkpoint=True)
    assert model.num_queries == 10 and model.rela is None and model.mask_head is not None
    assert model.build_config["backbone"] == "resnet_tiny" and model.build_config["return_interm_indices"] == [1, 2, 3, 4]
    assert model.transformer.encoder.activation_checkpoint


def test_precise_msda_makes_every_deformable_attention_deterministic():
    """TAO's model.precise_msda reaches each deformable attention of the encoder and decoder."""
    from mask_grounding_dino.config import load_spec
    from mask_grounding_dino.model.ms_deform_attn import MultiScaleDeformableAttention

    def flags(precise: bool) -> list[bool]:
        cfg = load_spec(overrides={"model.backbone": "resnet_tiny", "model.hidden_dim": 32, "model.nheads": 4,
                                   "model.enc_layers": 1, "model.dec_layers": 2, "model.dim_feedforward": 64,
                                   "model.num_queries": 10, "model.precise_msda": precise})
        model = MaskGroundingDINO.from_config(cfg.model, text_encoder_config=TINY_TEXT_CONFIG)
        return [m.deterministic for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]

    assert flags(True) == [True] * 3 and flags(False) == [False] * 3     # 1 encoder + 2 decoder layers


def test_train_backbone_false_freezes_the_backbone(gd):
    model = gd.tiny_model(train_backbone=False)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.input_proj.parameters())


@pytest.mark.parametrize("overrides, message", [
    (dict(num_feature_levels=3), "num_feature_levels"),
    (dict(pre_norm=True), "pre_norm"),
    (dict(nheads=3), "nheads"),
    (dict(two_stage_type="early"), "two_stage_type"),
    (dict(return_interm_indices=[2, 3, 4], num_feature_levels=3), "strides 8, 16 and 32"),
])
def test_impossible_architectures_are_spec_errors(overrides, message):
    with pytest.raises(SpecError, match=message):
        MaskGroundingDINO(**preset_config("tiny", **overrides))
