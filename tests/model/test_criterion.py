"""SetCriterion: term names and counts, weights, finiteness, masks / rela / detection-only, empty images."""

import math
from dataclasses import dataclass
from typing import Optional

import pytest
import torch

from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.criterion import SetCriterion, _sample_gt_masks
from mask_grounding_dino.model.outputs import GroundingOutputs, LayerPrediction

B, Q, T, QR = 2, 6, 8, 6
PAD = (32, 48)                       # padded input: masks at 8 x 12, union mask at 4 x 6
LN2 = math.log(2.0)


@dataclass
class _Target:
    boxes: torch.Tensor
    labels: torch.Tensor
    positive_map: torch.Tensor
    masks: Optional[torch.Tensor]
    size: tuple
    empty: bool = False


def _target(n: int, size=(30, 44), with_masks=True, empty=False, seed=0) -> _Target:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 0.4 + 0.3, torch.rand(n, 2, generator=g) * 0.2 + 0.2], 1)
    pmap = torch.zeros(n, 16)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        pmap[i, 1 + 2 * i: 3 + 2 * i] = 0.5
        cx, cy, bw, bh = boxes[i].tolist()
        masks[i, int((cy - bh / 2) * h):int((cy + bh / 2) * h), int((cx - bw / 2) * w):int((cx + bw / 2) * w)] = True
    return _Target(boxes=boxes, labels=torch.arange(n), positive_map=pmap,
                   masks=masks if with_masks else None, size=size, empty=empty)


def _outputs(n_aux=2, interm=True, masks=True, rela=True, seed=0) -> tuple[GroundingOutputs, dict]:
    """Random predictions as leaf tensors (so gradients can be checked)."""
    g = torch.Generator().manual_seed(seed)
    p = {"logits": torch.randn(n_aux + 1, B, Q, T, generator=g),
         "boxes": torch.rand(n_aux + 1, B, Q, 4, generator=g) * 0.5 + 0.25,
         "masks": torch.randn(n_aux + 1, B, Q, PAD[0] // 4, PAD[1] // 4, generator=g),
         "enc_logits": torch.randn(B, Q, T, generator=g),
         "enc_boxes": torch.rand(B, Q, 4, generator=g) * 0.5 + 0.25,
         "union": torch.randn(B, 2, PAD[0] // 8, PAD[1] // 8, generator=g),
         "minimap": torch.randn(B, QR, 2, generator=g),
         "nt": torch.randn(B, 2, generator=g)}
    return _wrap(p, n_aux, interm, masks, rela), p


def _wrap(p, n_aux, interm, masks, rela) -> GroundingOutputs:
    for v in p.values():
        v.requires_grad_(True)
    text_mask = torch.ones(B, T, dtype=torch.bool)
    text_mask[1, 6:] = False
    logits = p["logits"].masked_fill(~text_mask[None, :, None, :], float("-inf"))
    return GroundingOutputs(
        pred_logits=logits[-1], pred_boxes=p["boxes"][-1], text_mask=text_mask,
        aux_outputs=[LayerPrediction(logits[i], p["boxes"][i]) for i in range(n_aux)],
        enc_outputs=LayerPrediction(p["enc_logits"], p["enc_boxes"]) if interm else None,
        mask_fn=(lambda layer, b, q: p["masks"][layer][b, q]) if masks else None,
        union_mask_logits=p["union"] if rela else None, no_targets=p["nt"] if rela else None,
        minimap=p["minimap"] if rela else None, input_size=PAD)


ALL = ["labels", "boxes", "masks", "rela"]


def test_full_criterion_names_counts_weights_and_gradients():
    outputs, params = _outputs()
    targets = [_target(3, seed=1), _target(2, size=(32, 40), seed=2)]
    crit = SetCriterion(loss_types=ALL)
    out = crit(outputs, targets)
    per_layer = ["loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"]
    expected = set(per_layer) | {f"{k}_{i}" for k in per_layer for i in (0, 1)}
    expected |= {"loss_ce_interm", "loss_bbox_interm", "loss_giou_interm"}
    expected |= {"loss_rela_nt", "loss_rela_minimap", "loss_rela_union_mask"}
    assert set(out.weighted) == expected
    assert set(out.unweighted) >= expected | {"loss_xy", "loss_hw", "loss_xy_1", "loss_hw_interm"}
    for name, value in out.weighted.items():
        assert torch.isfinite(value), name
    # Weighted = coefficient x raw value (TAO defaults), and the total is their sum.
    for name, coef in [("loss_ce", 2), ("loss_bbox_0", 5), ("loss_giou_interm", 2), ("loss_mask_1", 2),
                       ("loss_dice", 5), ("loss_rela_minimap", 0.5), ("loss_rela_union_mask", 2)]:
        torch.testing.assert_close(out.weighted[name].detach(), coef * out.unweighted[name])
    torch.testing.assert_close(out.total.detach(), sum(v.detach() for v in out.weighted.values()))
    assert out.num_boxes == 5.0
    assert [len(q) for q, _ in out.indices] == [3, 2]
    out.total.backward()
    for name, tensor in params.items():
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_options_aux_interm_and_detection_only():
    outputs, _ = _outputs()
    targets = [_target(2, seed=1, with_masks=False), _target(1, seed=2, with_masks=False)]
    crit = SetCriterion(loss_types=["labels", "boxes"], aux_loss=False, no_interm_box_loss=True)
    out = crit(outputs, targets)
    assert set(out.weighted) == {"loss_ce", "loss_bbox", "loss_giou", "loss_ce_interm"}
    # interm_loss_coef scales the encoder's class term.
    out2 = SetCriterion(loss_types=["labels"], interm_loss_coef=0.5)(outputs, targets)
    torch.testing.assert_close(out2.weighted["loss_ce_interm"].detach(), 2 * 0.5 * out2.unweighted["loss_ce_interm"])
    # Mask loss requested but the data has no masks: zero terms, still finite and differentiable.
    out3 = SetCriterion(loss_types=["labels", "boxes", "masks"])(outputs, targets)
    assert out3.unweighted["loss_mask"].item() == 0.0 and out3.unweighted["loss_dice"].item() == 0.0
    out3.total.backward()
    # Model without mask head / region head: those terms are simply absent.
    bare, _ = _outputs(n_aux=0, interm=False, masks=False, rela=False)
    out4 = SetCriterion(loss_types=ALL)(bare, [_target(2, seed=1), _target(1, seed=2)])
    assert set(out4.weighted) == {"loss_ce", "loss_bbox", "loss_giou"}


def test_empty_images_give_finite_losses():
    outputs, params = _outputs()
    targets = [_target(0, seed=1), _target(2, seed=2, empty=True)]
    out = SetCriterion(loss_types=ALL)(outputs, targets)
    assert all(torch.isfinite(v) for v in out.weighted.values())
    assert out.unweighted["loss_bbox"].item() == 0.0 and out.unweighted["loss_giou"].item() == 0.0
    assert out.num_boxes == 1.0                  # clamped
    assert all(len(q) == 0 for q, _ in out.indices)
    out.total.backward()
    assert torch.isfinite(params["logits"].grad).all()


def _perfect(targets, params):
    """Predictions equal to the targets for queries 0..N-1; other queries confidently empty."""
    p = {k: v.detach().clone() for k, v in params.items()}
    p["logits"][:] = -10.0
    p["enc_logits"][:] = -10.0
    p["union"][:, 0] = 10.0
    p["union"][:, 1] = -10.0
    p["minimap"][..., 0] = 10.0
    p["minimap"][..., 1] = -10.0
    grid = (PAD[0] // 4, PAD[1] // 4)
    for b, t in enumerate(targets):
        n = t.boxes.shape[0]
        p["boxes"][:, b, :n] = t.boxes
        p["enc_boxes"][b, :n] = t.boxes
        for i in range(n):
            p["logits"][:, b, i, t.positive_map[i, :T] > 0] = 10.0
            p["enc_logits"][b, i, t.positive_map[i, :T] > 0] = 10.0
        p["masks"][:, b, :n] = _sample_gt_masks(t.masks, grid) * 20 - 10
        p["nt"][b] = torch.tensor([5.0, -5.0])
    return p


def test_loss_decreases_toward_targets():
    outputs, params = _outputs()
    targets = [_target(3, seed=1), _target(2, size=(32, 40), seed=2)]
    crit = SetCriterion(loss_types=["labels", "boxes", "masks"])
    random_out = crit(outputs, targets)
    perfect_out = crit(_wrap(_perfect(targets, params), 2, True, True, False), targets)
    for name, value in perfect_out.unweighted.items():
        assert value <= random_out.unweighted[name] + 1e-6, name
    # Near-perfect predictions: boxes exact, logits at +-10 (focal residue ~1e-5 per cell).
    assert perfect_out.unweighted["loss_bbox"].item() < 1e-6
    assert perfect_out.unweighted["loss_giou"].item() < 1e-5
    assert perfect_out.total.item() < 0.05 * random_out.total.item()
    # And gradient steps on random predictions lower the total.
    opt = torch.optim.SGD(params.values(), lr=0.05)
    first = None
    for _ in range(5):
        opt.zero_grad()
        out = crit(_wrap(params, 2, True, True, False), targets)
        first = out.total.item() if first is None else first
        out.total.backward()
        opt.step()
    assert crit(_wrap(params, 2, True, True, False), targets).total.item() < first


def test_gt_mask_sampling_is_pad_then_stride4_from_offset2():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 29, 43, generator=g) > 0.5            # odd unpadded size
    grid = (8, 12)
    padded = torch.zeros(2, 32, 48, dtype=torch.bool)
    padded[:, :29, :43] = masks
    torch.testing.assert_close(_sample_gt_masks(masks, grid), padded[:, 2::4, 2::4].float())


def test_box_terms_hand_value():
    outputs, _ = _outputs(n_aux=0, interm=False, masks=False, rela=False)
    target = _target(1, seed=3)
    # Make query 0 the obvious match: same box shifted by 0.01 in cx and 0.02 in w.
    boxes = outputs.pred_boxes.detach().clone()
    boxes[0, 0] = target.boxes[0] + torch.tensor([0.01, 0.0, 0.02, 0.0])
    outputs.pred_boxes = boxes
    out = SetCriterion(loss_types=["boxes"])(outputs, [target, _target(0)])
    assert out.indices[0][0].tolist() == [0]
    assert out.unweighted["loss_bbox"].item() == pytest.approx(0.03, abs=1e-6)
    assert out.unweighted["loss_xy"].item() == pytest.approx(0.01, abs=1e-6)


def test_rela_hand_values_and_minimap_layout():
    outputs, params = _outputs(n_aux=0, interm=False, masks=False)
    with torch.no_grad():
        params["union"].zero_()
        params["nt"].zero_()
    targets = [_target(2, seed=1), _target(0, seed=2, empty=True)]
    out = SetCriterion(loss_types=["rela"])(outputs, targets)
    # Zero logits: BCE = ln 2 everywhere -> 0.9 ln2 + 1.1 ln2; CE of 2 equal logits = ln 2.
    assert out.unweighted["loss_rela_union_mask"].item() == pytest.approx(2 * LN2, rel=1e-5)
    assert out.unweighted["loss_rela_nt"].item() == pytest.approx(LN2, rel=1e-6)

    # Minimap: 6 queries over a 32 x 48 image form a 2 x 3 grid; query q is cell (q // 3, q % 3).
    masks = torch.zeros(1, 32, 48, dtype=torch.bool)
    masks[0, :16, 16:32] = True                                   # exactly cell (0, 1) -> query 1
    t = _Target(boxes=torch.tensor([[0.5, 0.25, 0.33, 0.5]]), labels=torch.zeros(1, dtype=torch.long),
                positive_map=torch.zeros(1, 16), masks=masks, size=PAD)
    good = torch.full((B, QR, 2), 0.0)
    good[..., 0], good[..., 1] = 10.0, -10.0
    good[0, 1] = torch.tensor([-10.0, 10.0])
    transposed = good.clone()
    transposed[0, 1], transposed[0, 2] = good[0, 2], good[0, 1]
    crit = SetCriterion(loss_types=["rela"])
    losses = []
    for minimap in (good, transposed):
        outputs.minimap = minimap
        losses.append(crit(outputs, [t, _target(0, seed=2, empty=True)]).unweighted["loss_rela_minimap"].item())
    assert losses[0] < 1e-3 < losses[1]


def test_rela_union_ignores_padding():
    outputs, params = _outputs(n_aux=0, interm=False, masks=False)
    union_logits = torch.full_like(params["union"], 0.0)
    union_logits[:, 0] = 10.0                                # predict background everywhere ...
    union_logits[:, 1] = -10.0
    crit = SetCriterion(loss_types=["rela"])
    outputs.union_mask_logits = union_logits
    # Images of 16 x 24 padded to 32 x 48: only the top-left quarter is image.
    empty_target = _Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long),
                           positive_map=torch.zeros(0, 16), masks=torch.zeros(0, 16, 24, dtype=torch.bool),
                           size=(16, 24))
    base = crit(outputs, [empty_target, empty_target]).unweighted["loss_rela_union_mask"].item()
    union_logits[:, :, 2:, :] = -union_logits[:, :, 2:, :]   # ... then flip the padded rows: no change
    flipped = crit(outputs, [empty_target, empty_target]).unweighted["loss_rela_union_mask"].item()
    assert base == pytest.approx(flipped, abs=1e-6)
    assert base < 1e-3


def test_from_config_and_bad_loss_type():
    cfg = {"cls_loss_coef": 1.0, "loss_types": ["labels", "boxes"], "aux_loss": False,
           "set_cost_bbox": 3.0, "rela_nt_loss_coef": 4.0}
    crit = SetCriterion.from_config(cfg)
    assert crit.weights["loss_ce"] == 1.0 and crit.weights["loss_rela_nt"] == 4.0
    assert crit.matcher.cost_bbox == 3.0 and not crit.aux_loss
    with pytest.raises(SpecError, match="model.loss_types.*'mask'"):
        SetCriterion(loss_types=["labels", "mask"])


def test_mask_logits_from_pred_masks_without_mask_fn():
    outputs, params = _outputs(n_aux=1, interm=False, masks=False, rela=False)
    outputs.pred_masks = params["masks"][-1][:, :, None]          # [B, Q, 1, H/4, W/4] (eval mode)
    out = SetCriterion(loss_types=["labels", "boxes", "masks"])(outputs, [_target(2, seed=1), _target(1, seed=2)])
    assert "loss_mask" in out.weighted and "loss_mask_0" not in out.weighted
    assert torch.isfinite(out.weighted["loss_dice"])
    assert out.weighted["loss_dice"].item() > 0


def test_from_project_model_config_gives_tao_defaults():
    from mask_grounding_dino.config.model import ModelConfig

    crit = SetCriterion.from_config(ModelConfig())
    assert crit.loss_types == ["labels", "boxes", "masks"] and crit.aux_loss
    assert crit.weights == {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_mask": 2.0, "loss_dice": 5.0,
                            "loss_rela_nt": 1.0, "loss_rela_minimap": 0.5, "loss_rela_union_mask": 2.0}
    assert (crit.matcher.cost_class, crit.matcher.cost_bbox, crit.matcher.cost_giou) == (1.0, 5.0, 2.0)
    assert crit.matcher.one_to_many == 1
