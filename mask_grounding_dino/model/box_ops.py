"""Box conversions and (generalised) IoU, batched over any leading dimensions.

Boxes are ``[..., 4]`` tensors. ``cxcywh`` is the model's normalised format,
``xyxy`` the corner format used for IoU, ``xywh`` COCO's format.

Pairwise functions take ``a [..., N, 4]`` and ``b [..., M, 4]`` (leading
dimensions broadcast) and return ``[..., N, M]``; the ``*_aligned`` variants
compare ``a[i]`` with ``b[i]`` only and return ``[...]``.

Unions and enclosing areas are clamped to a tiny positive value so that
degenerate (zero-area) boxes give finite values instead of NaN; for ordinary
boxes the results equal torchvision's.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Smallest union / enclosing area used as a divisor (degenerate boxes only).
_EPS = 1e-12


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[..., 4]`` centre x, centre y, width, height -> x1, y1, x2, y2."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``[..., 4]`` x1, y1, x2, y2 -> centre x, centre y, width, height."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``[..., 4]`` x1, y1, x2, y2 -> COCO x, y, width, height."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """``[..., 4]`` xyxy -> ``[...]`` area (negative extents count as zero)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _pairwise_inter_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    area_a = box_area(a)                                           # [..., N]
    area_b = box_area(b)                                           # [..., M]
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])    # [..., N, M, 2]
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return inter, union


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of xyxy boxes: ``[..., N, 4] x [..., M, 4] -> [..., N, M]``."""
    inter, union = _pairwise_inter_union(a, b)
    return inter / union.clamp(min=_EPS)


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU of xyxy boxes: ``[..., N, 4] x [..., M, 4] -> [..., N, M]`` in [-1, 1]."""
    inter, union = _pairwise_inter_union(a, b)
    iou = inter / union.clamp(min=_EPS)
    lt = torch.minimum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.maximum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing.clamp(min=_EPS)


def generalized_box_iou_aligned(a: Tensor, b: Tensor) -> Tensor:
    """GIoU of matching pairs: ``[..., 4] x [..., 4] -> [...]`` (no N x N matrix)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a) + box_area(b) - inter
    iou = inter / union.clamp(min=_EPS)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing.clamp(min=_EPS)
