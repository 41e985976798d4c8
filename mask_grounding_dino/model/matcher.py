"""Hungarian matching between predicted queries and target instances.

Cost (TAO Grounding DINO, ``set_cost_*``)::

    C = cost_class * focal_class_cost + cost_bbox * L1(cxcywh) + cost_giou * (-GIoU)

The class cost of query ``q`` for target ``j`` is the focal-style
"positive minus negative" cost per token, averaged over the target phrase's
tokens with the weights of its ``positive_map`` row. Costs are computed for the
whole batch at once (targets padded to the largest count), moved to the CPU in
one transfer and solved per image with ``scipy.optimize.linear_sum_assignment``.

Optional one-to-many matching (``one_to_many=k``): each target is repeated ``k``
times so up to ``k`` queries are assigned to it. Denser supervision is a known
lever for faster convergence of set-matching detectors; off (``k=1``) by default,
as in TAO.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from mask_grounding_dino.model.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

#: Stand-in for NaN / +inf / -inf costs so that the assignment always solves;
#: a broken prediction is made maximally unattractive rather than free.
_BIG_COST = 1e6

Match = tuple[Tensor, Tensor]


class MatchTarget(Protocol):
    """What the matcher reads from a target (see ``data/batch.py`` ``Target``)."""

    boxes: Tensor          # [N, 4] normalised cxcywh
    positive_map: Tensor   # [N, max_text_len] token weights of each instance's phrase
    empty: bool


def cfg_value(cfg: Any, key: str, default: Any) -> Any:
    """``cfg.key`` (attribute or mapping access), or ``default`` when absent."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def fit_tokens(token_map: Tensor, num_tokens: int) -> Tensor:
    """Crop or zero-pad the last dim of ``[N, L]`` to ``num_tokens`` (positive maps are
    ``max_text_len`` wide; logits may be cut to the longest caption)."""
    length = token_map.shape[-1]
    if length >= num_tokens:
        return token_map[..., :num_tokens]
    return torch.nn.functional.pad(token_map, (0, num_tokens - length))


class HungarianMatcher(nn.Module):
    """One-to-one (or one-to-k) assignment of queries to targets, per image.

    Args:
        cost_class: weight of the focal token cost (``set_cost_class``).
        cost_bbox: weight of the L1 box cost (``set_cost_bbox``).
        cost_giou: weight of the -GIoU cost (``set_cost_giou``).
        focal_alpha, focal_gamma: focal parameters of the class cost.
        one_to_many: how many queries each target may take (1 = Hungarian one-to-one).
    """

    def __init__(self, *, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, one_to_many: int = 1):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: at least one of cost_class, cost_bbox, cost_giou must be non-zero")
        if one_to_many < 1:
            raise ValueError(f"HungarianMatcher: one_to_many must be >= 1, got {one_to_many}")
        self.cost_class = float(cost_class)
        self.cost_bbox = float(cost_bbox)
        self.cost_giou = float(cost_giou)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.one_to_many = int(one_to_many)

    @classmethod
    def from_config(cls, model_cfg: Any) -> "HungarianMatcher":
        """Build from the ``model`` spec section (``set_cost_*``, ``focal_alpha``, ``focal_gamma``)."""
        return cls(cost_class=cfg_value(model_cfg, "set_cost_class", 1.0),
                   cost_bbox=cfg_value(model_cfg, "set_cost_bbox", 5.0),
                   cost_giou=cfg_value(model_cfg, "set_cost_giou", 2.0),
                   focal_alpha=cfg_value(model_cfg, "focal_alpha", 0.25),
                   focal_gamma=cfg_value(model_cfg, "focal_gamma", 2.0),
                   one_to_many=cfg_value(model_cfg, "one_to_many", 1))

    @torch.no_grad()
    def cost_matrix(self, pred_logits: Tensor, pred_boxes: Tensor, targets: Sequence[MatchTarget],
                    text_mask: Tensor | None = None) -> tuple[Tensor, list[int]]:
        """Batched matching cost ``[B, Q, Nmax]`` (columns past each image's count are padding).

        Returns the cost (float32, finite, on the input device) and the target count per image.
        """
        bsz, num_queries, num_tokens = pred_logits.shape
        sizes = [0 if t.empty else int(t.boxes.shape[0]) for t in targets]
        n_max = max(sizes, default=0)
        device = pred_logits.device
        if n_max == 0:
            return pred_logits.new_zeros((bsz, num_queries, 0), dtype=torch.float32), sizes

        tgt_boxes = torch.zeros((bsz, n_max, 4), device=device)
        tgt_boxes[..., 2:] = 1.0    # padding boxes: any finite, non-degenerate value
        tgt_tokens = torch.zeros((bsz, n_max, num_tokens), device=device)
        for b, (t, n) in enumerate(zip(targets, sizes)):
            if n:
                tgt_boxes[b, :n] = t.boxes.to(device=device, dtype=torch.float32)
                tgt_tokens[b, :n] = fit_tokens(t.positive_map.to(device=device, dtype=torch.float32),
                                                num_tokens)
        if text_mask is not None:
            tgt_tokens = tgt_tokens * text_mask[:, None, :num_tokens].to(tgt_tokens.dtype)
        # Average over the phrase's tokens: weights of each target row sum to 1.
        tgt_tokens = tgt_tokens / tgt_tokens.sum(-1, keepdim=True).clamp(min=1e-6)

        prob = pred_logits.float().sigmoid()
        alpha, gamma = self.focal_alpha, self.focal_gamma
        neg = (1 - alpha) * prob ** gamma * -(1 - prob + 1e-8).log()
        pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
        cost_class = torch.bmm(pos - neg, tgt_tokens.transpose(1, 2))             # [B, Q, N]

        out_boxes = pred_boxes.float()
        cost_bbox = torch.cdist(out_boxes, tgt_boxes, p=1)                        # [B, Q, N]
        cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_boxes), box_cxcywh_to_xyxy(tgt_boxes))

        cost = self.cost_class * cost_class + self.cost_bbox * cost_bbox + self.cost_giou * cost_giou
        cost = torch.nan_to_num(cost, nan=_BIG_COST, posinf=_BIG_COST, neginf=-_BIG_COST)
        return cost, sizes

    @torch.no_grad()
    def forward(self, pred_logits: Tensor, pred_boxes: Tensor, targets: Sequence[MatchTarget],
                text_mask: Tensor | None = None) -> list[Match]:
        """Match each image's queries to its targets.

        Args:
            pred_logits: ``[B, Q, T]`` token logits.
            pred_boxes: ``[B, Q, 4]`` normalised cxcywh.
            targets: B targets with ``boxes [N, 4]``, ``positive_map [N, >=T]``, ``empty``.
            text_mask: ``[B, T]`` bool, True at real tokens (padded tokens get no weight).

        Returns:
            B pairs ``(query_idx [K] int64, target_idx [K] int64)`` on the CPU, sorted by
            query index, with ``K = min(Q, k * N)`` (``k = one_to_many``); empty for
            images without targets or flagged ``empty``.
        """
        cost, sizes = self.cost_matrix(pred_logits, pred_boxes, targets, text_mask)
        cost = cost.cpu().numpy()
        matches: list[Match] = []
        for b, n in enumerate(sizes):
            matches.append(self._solve(cost[b, :, :n], n))
        return matches

    def _solve(self, cost: np.ndarray, n: int) -> Match:
        if n == 0 or cost.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, empty.clone()
        if self.one_to_many > 1:
            cost = np.tile(cost, (1, self.one_to_many))     # column j + i*n is copy i of target j
        rows, cols = linear_sum_assignment(cost)
        return (torch.as_tensor(rows, dtype=torch.int64),
                torch.as_tensor(cols % n, dtype=torch.int64))
