"""The training criterion of Mask Grounding DINO (TAO's ``SetCriterion`` + weight dict).

For every supervised layer (the last decoder layer, each earlier decoder layer
in ``aux_outputs`` and the encoder proposals in ``enc_outputs``) the queries are
matched to the targets separately, then:

* ``labels`` -> ``loss_ce``: token focal loss, divided by the number of matches;
* ``boxes``  -> ``loss_bbox`` (L1 on cxcywh) and ``loss_giou`` (1 - GIoU), divided by
  the number of target boxes (averaged over processes, at least 1);
* ``masks``  -> ``loss_mask`` (focal, mean over pixels) and ``loss_dice``, on the matched
  queries only (``outputs.mask_fn``), against GT masks padded to the prediction grid
  x 4 and sampled with stride 4 from offset 2 (TAO's ground-truth sampling);
* ``rela`` (last layer only) -> ``loss_rela_union_mask``, ``loss_rela_minimap``,
  ``loss_rela_nt``.

Names get ``_{i}`` for decoder layer ``i`` and ``_interm`` for the encoder, as in TAO;
the encoder has no mask or rela terms and its box terms are dropped with
``no_interm_box_loss``. Every term is multiplied by its ``*_loss_coef`` (times
``interm_loss_coef`` for the encoder) and summed into ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.box_ops import box_cxcywh_to_xyxy, generalized_box_iou_aligned
from mask_grounding_dino.model.losses import (
    dice_loss,
    fg_bg_bce,
    find_grid,
    mask_focal_loss,
    pool_fraction,
    rasterize_boxes,
    token_focal_loss,
)
from mask_grounding_dino.model.matcher import HungarianMatcher, Match, cfg_value, fit_tokens
from mask_grounding_dino.model.outputs import GroundingOutputs

LOSS_TYPES = ("labels", "boxes", "masks", "rela")

#: TAO's default coefficients (``model`` section) by spec key.
_DEFAULT_COEFS = {
    "cls_loss_coef": 2.0, "bbox_loss_coef": 5.0, "giou_loss_coef": 2.0,
    "mask_loss_coef": 2.0, "dice_loss_coef": 5.0, "interm_loss_coef": 1.0,
    "rela_nt_loss_coef": 1.0, "rela_minimap_loss_coef": 0.5, "rela_union_mask_loss_coef": 2.0,
}
#: ReLA no-target cross-entropy class weights (target, no-target), as TAO.
_RELA_NT_WEIGHTS = (0.9, 1.1)
#: GT masks are sampled every 4 pixels starting at pixel 2 (centre of each 4x4 cell).
_MASK_STRIDE = 4


class Target(Protocol):
    """What the criterion reads from a target (``data/batch.py``)."""

    boxes: Tensor                   # [N, 4] normalised cxcywh
    positive_map: Tensor            # [N, max_text_len] token weights of the instance's phrase
    masks: Optional[Tensor]         # [N, h, w] bool at the transformed unpadded size, or None
    empty: bool                     # no-target (VG) sample
    size: tuple[int, int]           # (h, w) after transforms, before padding


@dataclass
class LossOutput:
    """Result of :meth:`SetCriterion.forward`.

    ``total``: the weighted sum (backpropagate this). ``weighted``: each term times
    its coefficient, TAO names (``loss_ce``, ``loss_bbox_0``, ``loss_giou_interm``...).
    ``unweighted``: detached raw values for logging (also ``loss_xy``/``loss_hw``).
    ``indices``: the last layer's matches per image; ``num_boxes``: the box normaliser.
    """

    total: Tensor
    weighted: dict[str, Tensor]
    unweighted: dict[str, Tensor]
    indices: list[Match] = field(default_factory=list)
    num_boxes: float = 1.0


def _global_num_boxes(count: int, device: torch.device) -> float:
    """Boxes per process averaged over all processes, at least 1 (TAO's normaliser)."""
    num = torch.tensor([float(count)], device=device)
    world = 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(num)
        world = torch.distributed.get_world_size()
    return max(num.item() / world, 1.0)


def _graph_zero(outputs: GroundingOutputs) -> Tensor:
    """A 0 attached to the graph (keeps every process's backward identical under DDP).

    Built from the boxes: the logits hold -inf at padded tokens, and -inf * 0 is NaN.
    """
    return outputs.pred_boxes.float().sum() * 0.0


def _query_index(indices: Sequence[Match], device: torch.device) -> tuple[Tensor, Tensor]:
    batch = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)]).to(device)
    query = torch.cat([q for q, _ in indices]).to(device)
    return batch, query


def _sample_gt_masks(masks: Tensor, grid: tuple[int, int]) -> Tensor:
    """``[N, h, w]`` -> ``[N, gh, gw]`` float: pad to ``4*grid`` and take pixels (2 + 4i, 2 + 4j)."""
    off = _MASK_STRIDE // 2
    sampled = masks[:, off::_MASK_STRIDE, off::_MASK_STRIDE][:, :grid[0], :grid[1]].float()
    # Padding after sampling equals sampling the zero-padded mask (padding is zeros).
    return F.pad(sampled, (0, grid[1] - sampled.shape[2], 0, grid[0] - sampled.shape[1]))


class SetCriterion(nn.Module):
    """Matching + weighted losses over all supervised layers.

    Args:
        matcher: the Hungarian matcher (default: TAO costs 1/5/2).
        loss_types: subset of ``labels, boxes, masks, rela`` (``model.loss_types``).
        *_loss_coef: TAO's coefficients; ``interm_loss_coef`` scales the encoder terms.
        no_interm_box_loss: drop the encoder's L1/GIoU terms.
        aux_loss: supervise the earlier decoder layers (``aux_outputs``).
        focal_alpha, focal_gamma: focal loss parameters (token and mask losses).
    """

    def __init__(self, *, matcher: HungarianMatcher | None = None,
                 loss_types: Iterable[str] = ("labels", "boxes", "masks"),
                 cls_loss_coef: float = 2.0, bbox_loss_coef: float = 5.0, giou_loss_coef: float = 2.0,
                 mask_loss_coef: float = 2.0, dice_loss_coef: float = 5.0, interm_loss_coef: float = 1.0,
                 no_interm_box_loss: bool = False, aux_loss: bool = True,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 rela_nt_loss_coef: float = 1.0, rela_minimap_loss_coef: float = 0.5,
                 rela_union_mask_loss_coef: float = 2.0):
        super().__init__()
        loss_types = list(loss_types)
        unknown = [t for t in loss_types if t not in LOSS_TYPES]
        if unknown:
            raise SpecError(f"model.loss_types: unknown loss type(s) {unknown}; allowed: {', '.join(LOSS_TYPES)}")
        self.matcher = matcher if matcher is not None else HungarianMatcher(focal_alpha=focal_alpha,
                                                                           focal_gamma=focal_gamma)
        self.loss_types = loss_types
        self.aux_loss = bool(aux_loss)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.weights = {
            "loss_ce": float(cls_loss_coef), "loss_bbox": float(bbox_loss_coef),
            "loss_giou": float(giou_loss_coef), "loss_mask": float(mask_loss_coef),
            "loss_dice": float(dice_loss_coef), "loss_rela_nt": float(rela_nt_loss_coef),
            "loss_rela_minimap": float(rela_minimap_loss_coef),
            "loss_rela_union_mask": float(rela_union_mask_loss_coef),
        }
        box_scale = 0.0 if no_interm_box_loss else 1.0
        self.interm_weights = {
            "loss_ce": float(interm_loss_coef) * self.weights["loss_ce"],
            "loss_bbox": float(interm_loss_coef) * box_scale * self.weights["loss_bbox"],
            "loss_giou": float(interm_loss_coef) * box_scale * self.weights["loss_giou"],
        }
        self.register_buffer("rela_nt_weights", torch.tensor(_RELA_NT_WEIGHTS), persistent=False)

    @classmethod
    def from_config(cls, model_cfg: Any) -> "SetCriterion":
        """Build from the ``model`` spec section (TAO key names)."""
        coefs = {k: cfg_value(model_cfg, k, v) for k, v in _DEFAULT_COEFS.items()}
        return cls(matcher=HungarianMatcher.from_config(model_cfg),
                   loss_types=cfg_value(model_cfg, "loss_types", ["labels", "boxes", "masks"]),
                   no_interm_box_loss=cfg_value(model_cfg, "no_interm_box_loss", False),
                   aux_loss=cfg_value(model_cfg, "aux_loss", True),
                   focal_alpha=cfg_value(model_cfg, "focal_alpha", 0.25),
                   focal_gamma=cfg_value(model_cfg, "focal_gamma", 2.0),
                   **coefs)

    # ------------------------------------------------------------------ forward
    def forward(self, outputs: GroundingOutputs, targets: Sequence[Target]) -> LossOutput:
        device = outputs.pred_logits.device
        count = sum(0 if t.empty else int(t.boxes.shape[0]) for t in targets)
        # With k-to-one matching each box is supervised k times: keep the per-box scale.
        num_boxes = _global_num_boxes(count, device) * self.matcher.one_to_many
        raw: dict[str, Tensor] = {}
        weighted: dict[str, Tensor] = {}

        def add(name: str, value: Tensor, weight: float | None) -> None:
            raw[name] = value.detach()
            if weight is not None and weight != 0:
                weighted[name] = weight * value

        # Last decoder layer, then earlier layers (mask layer index = decoder layer), then encoder.
        layers = [("", outputs.pred_logits, outputs.pred_boxes, -1, self.weights)]
        if self.aux_loss:
            layers += [(f"_{i}", aux.pred_logits, aux.pred_boxes, i, self.weights)
                       for i, aux in enumerate(outputs.aux_outputs)]
        if outputs.enc_outputs is not None:
            layers.append(("_interm", outputs.enc_outputs.pred_logits, outputs.enc_outputs.pred_boxes,
                           None, self.interm_weights))

        last_indices: list[Match] = []
        for suffix, logits, boxes, mask_layer, weights in layers:
            indices = self.matcher(logits, boxes, targets, outputs.text_mask)
            if suffix == "":
                last_indices = indices
            if "labels" in self.loss_types:
                add("loss_ce" + suffix, self.loss_labels(logits, targets, indices, outputs.text_mask),
                    weights.get("loss_ce"))
            if "boxes" in self.loss_types and (weights.get("loss_bbox") or weights.get("loss_giou")):
                for name, value in self.loss_boxes(boxes, targets, indices, num_boxes).items():
                    add(name + suffix, value, weights.get(name))
            if "masks" in self.loss_types and mask_layer is not None:
                for name, value in self.loss_masks(outputs, mask_layer, targets, indices, num_boxes).items():
                    add(name + suffix, value, weights.get(name))
        if outputs.dn_meta is not None and outputs.dn_outputs:
            for name, value, weight in self.loss_denoising(outputs, targets, num_boxes):
                add(name, value, weight)
        if "rela" in self.loss_types:
            for name, value in self.loss_rela(outputs, targets).items():
                add(name, value, self.weights[name])

        if weighted:
            total = torch.stack([v.float() for v in weighted.values()]).sum()
        else:
            total = _graph_zero(outputs)
        return LossOutput(total=total, weighted=weighted, unweighted=raw, indices=last_indices,
                          num_boxes=num_boxes)

    # ------------------------------------------------------------------- terms
    def loss_labels(self, logits: Tensor, targets: Sequence[Target], indices: Sequence[Match],
                    text_mask: Tensor) -> Tensor:
        """Token focal loss ``[B, Q, T]`` vs the matched phrases' token maps, / number of matches."""
        token_targets = torch.zeros_like(logits, dtype=torch.float32)
        num_pos = 0
        for b, (t, (q_idx, t_idx)) in enumerate(zip(targets, indices)):
            if len(q_idx):
                tokens = fit_tokens(t.positive_map.to(logits.device), logits.shape[-1])
                token_targets[b, q_idx.to(logits.device)] = (tokens[t_idx.to(logits.device)] > 0).float()
                num_pos += len(q_idx)
        return token_focal_loss(logits.float(), token_targets, text_mask.bool(), num_pos,
                                self.focal_alpha, self.focal_gamma)

    def loss_denoising(self, outputs: GroundingOutputs, targets: Sequence[Target], num_boxes: float
                       ) -> list[tuple[str, Tensor, float]]:
        """Denoising queries (``model.dn_number > 0``): every positive copy must reconstruct
        its box and phrase, every negative copy must predict no phrase (its token targets stay
        0). No matching: the copy -> target pairing is known. Terms ``loss_ce_dn``,
        ``loss_bbox_dn``, ``loss_giou_dn`` (``_dn_{i}`` for earlier layers), TAO's coefficients."""
        meta = outputs.dn_meta
        indices = [tuple(t.to(outputs.pred_logits.device) for t in meta.positive_pairs(b))
                   if not getattr(tgt, "empty", False) else (torch.zeros(0, dtype=torch.long),) * 2
                   for b, tgt in enumerate(targets)]
        layers = list(enumerate(outputs.dn_outputs))
        last = len(layers) - 1
        if not self.aux_loss:
            layers = layers[-1:]
        scale = num_boxes * meta.num_groups
        terms = []
        for i, pred in layers:
            suffix = "_dn" if i == last else f"_dn_{i}"
            if "labels" in self.loss_types:
                terms.append(("loss_ce" + suffix, self.loss_labels(pred.pred_logits, targets, indices,
                                                                    outputs.text_mask), self.weights["loss_ce"]))
            if "boxes" in self.loss_types:
                for name, value in self.loss_boxes(pred.pred_boxes, targets, indices, scale).items():
                    terms.append((name + suffix, value, self.weights.get(name)))
        return terms

    def loss_boxes(self, boxes: Tensor, targets: Sequence[Target], indices: Sequence[Match],
                   num_boxes: float) -> dict[str, Tensor]:
        """L1 and 1 - GIoU of matched boxes (normalised cxcywh), summed / ``num_boxes``."""
        batch_idx, query_idx = _query_index(indices, boxes.device)
        src = boxes[batch_idx, query_idx].float()                                    # [K, 4]
        tgt = torch.cat([t.boxes[j.to(t.boxes.device)] for t, (_, j) in zip(targets, indices)]
                        ).to(device=boxes.device, dtype=torch.float32)
        l1 = F.l1_loss(src, tgt, reduction="none")
        giou = generalized_box_iou_aligned(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))
        return {"loss_bbox": l1.sum() / num_boxes,
                "loss_giou": (1 - giou).sum() / num_boxes,
                "loss_xy": l1[:, :2].detach().sum() / num_boxes,
                "loss_hw": l1[:, 2:].detach().sum() / num_boxes}

    def loss_masks(self, outputs: GroundingOutputs, layer: int, targets: Sequence[Target],
                   indices: Sequence[Match], num_boxes: float) -> dict[str, Tensor]:
        """Focal + dice of the matched queries' masks at H/4 vs sampled GT masks.

        Pairs whose target has no masks (box-only data) are skipped; returns {} when no
        mask logits are available for this layer (no ``mask_fn``; ``pred_masks`` only
        serves the last layer).
        """
        if outputs.mask_fn is None and (layer != -1 or outputs.pred_masks is None):
            return {}
        device = outputs.pred_logits.device
        keep = [(b, q, j) for b, (t, (q, j)) in enumerate(zip(targets, indices))
                if t.masks is not None and len(q)]
        if not keep:
            zero = _graph_zero(outputs)
            return {"loss_mask": zero, "loss_dice": zero.clone()}
        batch_idx = torch.cat([torch.full_like(q, b) for b, q, _ in keep]).to(device)
        query_idx = torch.cat([q for _, q, _ in keep]).to(device)
        if outputs.mask_fn is not None:
            logits = outputs.mask_fn(layer, batch_idx, query_idx)                    # [K, h4, w4]
        else:
            logits = outputs.pred_masks[batch_idx, query_idx, 0]
        grid = (logits.shape[-2], logits.shape[-1])
        gt = torch.cat([_sample_gt_masks(targets[b].masks[j.to(targets[b].masks.device)], grid)
                        for b, _, j in keep]).to(device)
        logits = logits.float().flatten(1)
        gt = gt.flatten(1)
        return {"loss_mask": mask_focal_loss(logits, gt, num_boxes, self.focal_alpha, self.focal_gamma),
                "loss_dice": dice_loss(logits, gt, num_boxes)}

    def loss_rela(self, outputs: GroundingOutputs, targets: Sequence[Target]) -> dict[str, Tensor]:
        """ReLA region-head losses; {} when the outputs carry no region head."""
        union_logits, no_targets = outputs.union_mask_logits, outputs.no_targets
        if union_logits is None or no_targets is None:
            return {}
        h8, w8 = union_logits.shape[-2:]
        pad_h, pad_w = 8 * h8, 8 * w8
        union, valid = _union_targets(targets, (pad_h, pad_w), union_logits.device)  # [B, 1, H, W]
        losses = {"loss_rela_union_mask": fg_bg_bce(union_logits.float(), pool_fraction(union, (h8, w8)),
                                                    pool_fraction(valid, (h8, w8)))}
        if outputs.minimap is not None:
            bsz, n_region, _ = outputs.minimap.shape
            rows, cols = find_grid(n_region, pad_h, pad_w)
            # Query q sits at row q // cols, column q % cols of the grid.
            minimap = outputs.minimap.float().permute(0, 2, 1).reshape(bsz, 2, rows, cols)
            fg = pool_fraction(union, (rows, cols))
            losses["loss_rela_minimap"] = fg_bg_bce(minimap, fg, torch.ones_like(fg))
        empty = torch.tensor([int(bool(t.empty)) for t in targets], device=no_targets.device)
        losses["loss_rela_nt"] = F.cross_entropy(no_targets.float(), empty,
                                                 weight=self.rela_nt_weights.to(no_targets.device))
        return losses


def _union_targets(targets: Sequence[Target], padded: tuple[int, int],
                   device: torch.device) -> tuple[Tensor, Tensor]:
    """Union of each sample's instance masks and its valid (unpadded) area, both ``[B, 1, H, W]``.

    Samples without masks use their filled boxes; empty samples have an all-zero union.
    """
    union = torch.zeros((len(targets), 1) + padded, device=device)
    valid = torch.zeros_like(union)
    for b, t in enumerate(targets):
        h, w = (int(s) for s in t.size)
        valid[b, 0, :h, :w] = 1.0
        n = 0 if t.empty else int(t.boxes.shape[0])
        if n == 0:
            continue
        masks = t.masks if t.masks is not None else rasterize_boxes(t.boxes, (h, w))
        m = masks.to(device).bool().any(0)[:padded[0], :padded[1]]
        union[b, 0, :m.shape[0], :m.shape[1]] = m.float()
    return union, valid
