"""Contrastive denoising queries (DINO's CDN), optional: ``use_dn`` and ``dn_number > 0``.

During training, noised copies of the ground-truth boxes enter the decoder beside
the selected queries. Each group holds one *positive* copy of every box (small
noise: it should be reconstructed) and one *negative* copy (larger noise: it should
be rejected). Their content embedding is ``label_enc`` of the instance's phrase
index (TAO's choice, ``max_text_len + 1`` entries), sometimes replaced by a random
one (label noise). An attention mask keeps the selected queries from seeing the
denoising ones and the groups from seeing each other, so the ordinary predictions
are exactly those of a model without denoising. TAO's default ``dn_number`` is 0.

``dn_number`` is the number of positive denoising queries per image: the groups
are ``max(1, dn_number // max_boxes_in_batch)`` (the original's rule for large values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import inverse_sigmoid
from .outputs import LayerPrediction
from .transformer import QueryPrefix


@dataclass
class DenoisingMeta:
    """Layout of the denoising queries: ``num_groups`` groups of ``2 * group_size`` slots
    (positives first, then negatives); ``num_boxes[b]`` ground-truth boxes of image b."""

    num_groups: int
    group_size: int
    num_boxes: list[int]

    @property
    def pad_size(self) -> int:
        return 2 * self.group_size * self.num_groups

    def positive_pairs(self, image: int) -> tuple[Tensor, Tensor]:
        """(query index, target index) of every positive query of ``image`` (for the box/class loss)."""
        n = self.num_boxes[image]
        target = torch.arange(n).repeat(self.num_groups)
        group = torch.arange(self.num_groups).repeat_interleave(n)
        return group * 2 * self.group_size + target, target

    def negative_queries(self, image: int) -> Tensor:
        """Query indices of the negative copies of ``image`` (targets: no object)."""
        query, _ = self.positive_pairs(image)
        return query + self.group_size


def _field(target, name: str) -> Tensor:
    return target[name] if isinstance(target, dict) else getattr(target, name)


def build_denoising_queries(targets: list, *, num_groups: int, label_noise_ratio: float, box_noise_scale: float,
                            num_queries: int, num_labels: int, label_enc: nn.Embedding
                            ) -> tuple[QueryPrefix | None, DenoisingMeta | None]:
    """Noised copies of the targets' boxes (``boxes [N,4]`` cxcywh in [0,1], ``labels [N]``).

    Returns (None, None) when the batch has no box at all.
    """
    boxes = [_field(t, "boxes").float() for t in targets]
    labels = [_field(t, "labels").long() for t in targets]
    counts = [int(b.shape[0]) for b in boxes]
    size = max(counts, default=0)
    if size == 0:
        return None, None
    groups = max(1, num_groups // size)
    meta = DenoisingMeta(num_groups=groups, group_size=size, num_boxes=counts)
    device, hidden = label_enc.weight.device, label_enc.weight.shape[1]
    batch, pad = len(targets), meta.pad_size

    content = torch.zeros(batch, pad, hidden, device=device)
    refpoints = torch.zeros(batch, pad, 4, device=device)
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        n = counts[b]
        if n == 0:
            continue
        bx, lb = bx.to(device), lb.to(device)
        gt = bx.repeat(2 * groups, 1)                                     # [2G*n, 4] pos, neg, pos, neg...
        negative = torch.arange(2 * groups, device=device).repeat_interleave(n) % 2 == 1
        lab = lb.repeat(2 * groups)
        if label_noise_ratio > 0:
            flip = torch.rand(lab.shape, device=device) < label_noise_ratio * 0.5
            lab = torch.where(flip, torch.randint_like(lab, 0, num_labels), lab)
        noised = gt
        if box_noise_scale > 0:
            xyxy = torch.cat([gt[:, :2] - gt[:, 2:] / 2, gt[:, :2] + gt[:, 2:] / 2], -1)
            half = torch.cat([gt[:, 2:] / 2, gt[:, 2:] / 2], -1)
            # |shift| < half size for positives, in [1, 2) x half size for negatives.
            magnitude = torch.rand_like(gt) + negative[:, None].float()
            sign = torch.randint(0, 2, gt.shape, device=device).float() * 2 - 1
            xyxy = (xyxy + sign * magnitude * half * box_noise_scale).clamp(0.0, 1.0)
            noised = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], -1)
        slots = (torch.arange(2 * groups, device=device)[:, None] * size
                 + torch.arange(n, device=device)[None]).flatten()        # slot of copy c of box j: c*size + j
        content[b, slots] = label_enc(lab)
        refpoints[b, slots] = inverse_sigmoid(noised)

    total = pad + num_queries
    blocked = torch.zeros(total, total, dtype=torch.bool, device=device)
    blocked[pad:, :pad] = True                                            # selected queries never see them
    group_of = torch.arange(pad, device=device) // (2 * size)
    blocked[:pad, :pad] = group_of[:, None] != group_of[None, :]          # groups do not see each other
    return QueryPrefix(tgt=content, refpoints_unsig=refpoints, attn_mask=blocked), meta


def split_denoising_outputs(result, layers: list[LayerPrediction], meta: DenoisingMeta) -> None:
    """Put every decoder layer's predictions for the denoising queries on ``result``."""
    pad = meta.pad_size
    result.dn_outputs = [LayerPrediction(p.pred_logits[:, :pad], p.pred_boxes[:, :pad]) for p in layers]
    result.dn_meta = meta
