"""The denoising terms of the criterion (model.dn_number > 0) on the real tiny model."""

from types import SimpleNamespace

import torch

from mask_grounding_dino.model.criterion import SetCriterion


def _targets(tp_caption_maps):
    pos_red, pos_blue = tp_caption_maps
    return [
        SimpleNamespace(boxes=torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]]),
                        labels=torch.tensor([0, 1]), positive_map=torch.stack([pos_red, pos_blue]),
                        masks=None, empty=False, size=(64, 96)),
        SimpleNamespace(boxes=torch.tensor([[0.5, 0.5, 0.4, 0.4]]), labels=torch.tensor([1]),
                        positive_map=pos_blue[None], masks=None, empty=False, size=(64, 80)),
    ]


def _maps():
    # "red circle . blue square ." -> tokens: [CLS] red circle . blue square . [SEP]
    red, blue = torch.zeros(256), torch.zeros(256)
    red[1:3] = 0.5
    blue[4:6] = 0.5
    return red, blue


def test_denoising_terms_present_finite_and_trainable(gd):
    model = gd.tiny_model(dn_number=4, has_mask=False).train()
    x, mask = gd.images(2, 64, 96, pad_right=16)
    text = gd.text_inputs(["red circle . blue square .", "red circle . blue square ."])
    targets = _targets(_maps())
    out = model(x, *text.as_tuple(), pixel_mask=mask, targets=targets)
    crit = SetCriterion(loss_types=["labels", "boxes"])
    losses = crit(out, targets)
    layers = len(out.dn_outputs)
    names = {"loss_ce_dn", "loss_bbox_dn", "loss_giou_dn"} | {f"loss_ce_dn_{i}" for i in range(layers - 1)}
    assert names <= set(losses.weighted)
    assert all(torch.isfinite(v) for v in losses.weighted.values())
    losses.total.backward()
    assert model.label_enc.weight.grad.abs().sum() > 0


def test_denoising_box_loss_is_zero_when_copies_are_perfect():
    """Exact reconstructions by the positive copies give zero L1 and GIoU terms."""
    from mask_grounding_dino.model.denoising import DenoisingMeta
    from mask_grounding_dino.model.outputs import GroundingOutputs, LayerPrediction

    targets = _targets(_maps())
    meta = DenoisingMeta(num_groups=2, group_size=2, num_boxes=[2, 1])
    boxes = torch.full((2, meta.pad_size, 4), 0.5)
    for b, t in enumerate(targets):
        q, j = meta.positive_pairs(b)
        boxes[b, q] = t.boxes[j]
    logits = torch.full((2, meta.pad_size, 256), -10.0)
    dn = LayerPrediction(pred_logits=logits, pred_boxes=boxes)
    text_mask = torch.zeros(2, 256, dtype=torch.bool)
    text_mask[:, :8] = True
    out = GroundingOutputs(pred_logits=torch.zeros(2, 5, 256), pred_boxes=torch.full((2, 5, 4), 0.5),
                           text_mask=text_mask, dn_outputs=[dn], dn_meta=meta)
    losses = SetCriterion(loss_types=["labels", "boxes"], aux_loss=False)(out, targets)
    assert losses.unweighted["loss_bbox_dn"].item() == 0.0
    assert abs(losses.unweighted["loss_giou_dn"].item()) < 1e-6  # GIoU of identical boxes is 1 (float rounding)
    # Negative copies predicting nothing and positives predicting nothing: the class term is positive
    assert losses.unweighted["loss_ce_dn"].item() > 0
