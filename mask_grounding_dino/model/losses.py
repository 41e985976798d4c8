"""Loss functions used by the criterion: focal, dice, and the ReLA region losses.

Each function is a plain tensor function (no matching, no weights from the spec)
so it can be checked against hand-computed values. Normalisation follows TAO's
Mask Grounding DINO: token and mask losses are summed and divided by a number
of boxes/matches supplied by the caller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise sigmoid focal loss (RetinaNet), no reduction.

    ``loss = a_t * (1 - p_t)^gamma * BCE(logits, targets)`` with
    ``a_t = alpha`` on positives and ``1 - alpha`` on negatives; ``alpha < 0``
    disables the balancing. ``targets`` may be soft (in [0, 1]).
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def token_focal_loss(logits: Tensor, targets: Tensor, text_mask: Tensor, num_pos: float,
                     alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Token-level focal loss over queries x real tokens, summed, divided by ``num_pos``.

    Args:
        logits: ``[B, Q, T]`` token logits (-inf at padded tokens is fine: those are skipped).
        targets: ``[B, Q, T]`` 1 at the tokens of the phrase a query was matched to, else 0.
        text_mask: ``[B, T]`` bool, True at real tokens.
        num_pos: normaliser (number of matched queries, clamped to >= 1 here).
    """
    valid = text_mask[:, None, :].expand_as(logits)
    # Select before computing: -inf logits at padded tokens would give NaN (-inf * 0).
    loss = sigmoid_focal_loss(logits[valid], targets[valid].to(logits.dtype), alpha, gamma)
    return loss.sum() / max(float(num_pos), 1.0)


def mask_focal_loss(logits: Tensor, targets: Tensor, num_boxes: float,
                    alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal loss averaged over the pixels of each mask, summed over masks, divided by ``num_boxes``.

    ``logits``, ``targets``: ``[K, P]`` (K matched masks, P pixels).
    """
    return sigmoid_focal_loss(logits, targets, alpha, gamma).mean(1).sum() / num_boxes


def dice_loss(logits: Tensor, targets: Tensor, num_boxes: float) -> Tensor:
    """``1 - (2|X.Y| + 1) / (|X| + |Y| + 1)`` per mask on sigmoid probabilities, summed / ``num_boxes``.

    ``logits``, ``targets``: ``[K, P]``. The +1 smoothing keeps empty masks finite.
    """
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(1)
    denominator = prob.sum(1) + targets.sum(1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_boxes


def pool_fraction(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Fraction of set pixels of ``masks [B, 1, H, W]`` inside each cell of a ``size`` grid.

    Returns ``[B, 1, h, w]`` in [0, 1], TAO's target rule ("CPP pooling"): when ``H, W`` are
    not multiples of ``h, w`` the mask is first resized (nearest) to ``h * (H // h)`` by
    ``w * (W // w)``; then each cell is the mean of its ``H // h`` x ``W // w`` block. (Adaptive
    pooling, whose bins overlap and vary in size, gives other targets, by up to ~0.01 on
    real minimaps.) A grid finer than the mask (``H < h``) resizes to ``h`` exactly, one pixel
    per cell (TAO's formula would ask for a zero-size image there).
    """
    height, width = masks.shape[-2:]
    rows, cols = size
    masks = masks.float()
    if height % rows or width % cols:
        target = (rows * max(1, height // rows), cols * max(1, width // cols))
        masks = F.interpolate(masks, size=target, mode="nearest")
        height, width = target
    block = (height // rows, width // cols)
    return F.avg_pool2d(masks, kernel_size=block, stride=block)


def fg_bg_bce(logits: Tensor, fg_target: Tensor, valid: Tensor,
              bg_weight: float = 0.9, fg_weight: float = 1.1) -> Tensor:
    """Weighted BCE of a (background, foreground) logit pair per cell (ReLA union mask / minimap).

    Args:
        logits: ``[B, 2, h, w]`` (channel 0 background, 1 foreground).
        fg_target: ``[B, 1, h, w]`` soft foreground fraction; the background target is ``1 - fg``.
        valid: ``[B, 1, h, w]`` weight per cell (fraction of the cell inside the unpadded image).

    Returns ``bg_weight * mean_v(BCE_bg) + fg_weight * mean_v(BCE_fg)`` where
    ``mean_v`` is the ``valid``-weighted mean.
    """
    norm = valid.sum() + 1e-6
    bg = F.binary_cross_entropy_with_logits(logits[:, 0:1], 1 - fg_target, reduction="none")
    fg = F.binary_cross_entropy_with_logits(logits[:, 1:2], fg_target, reduction="none")
    return bg_weight * (bg * valid).sum() / norm + fg_weight * (fg * valid).sum() / norm


def find_grid(n: int, height: int, width: int) -> tuple[int, int]:
    """Rows x columns (``rows * cols == n``) for the region queries' minimap, TAO's rule.

    Rows run over the divisors of ``n`` up to ``isqrt(n)`` only, and the pair with the
    smallest ``|height * cols - width * rows|`` wins (the first one on ties). So the grid
    never has more rows than columns, even for a portrait image: that shapes the minimap
    target, and fine-tuning must learn the same target as TAO's training.
    """
    best, best_diff = (1, n), math.inf
    for rows in range(1, math.isqrt(n) + 1):
        if n % rows == 0:
            cols = n // rows
            diff = abs(height * cols - width * rows)
            if diff < best_diff:
                best, best_diff = (rows, cols), diff
    return best


def rasterize_boxes(boxes_cxcywh: Tensor, size: tuple[int, int]) -> Tensor:
    """Filled boxes as masks: ``[N, 4]`` normalised cxcywh -> ``[N, h, w]`` bool at ``size``.

    Stands in for instance masks when a sample has boxes only (ReLA targets).
    """
    h, w = size
    ys = (torch.arange(h, device=boxes_cxcywh.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=boxes_cxcywh.device, dtype=torch.float32) + 0.5) / w
    b = boxes_cxcywh.float()
    x1, y1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
    x2, y2 = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    in_y = (ys[None, :] >= y1[:, None]) & (ys[None, :] <= y2[:, None])     # [N, h]
    in_x = (xs[None, :] >= x1[:, None]) & (xs[None, :] <= x2[:, None])     # [N, w]
    return in_y[:, :, None] & in_x[:, None, :]
