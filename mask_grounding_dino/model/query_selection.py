"""Language-guided query selection (two-stage ``standard``): every encoder token is a
box proposal; the ``num_queries`` tokens with the highest text similarity become
the decoder's reference boxes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def encoder_proposals(memory: Tensor, pad_mask: Tensor, spatial_shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """One anchor box per token: its cell centre, size ``0.05 * 2**level``.

    Args:
        memory: [B,N,C] encoder output; pad_mask: [B,N] bool (True = pad).
    Returns:
        memory with pad / border tokens zeroed [B,N,C], and proposals in logit
        space [B,N,4] (``inf`` at pad and border tokens, whose centre or size lies
        outside (0.01, 0.99)).
    """
    batch = memory.shape[0]
    proposals = []
    start = 0
    for level, (h, w) in enumerate(spatial_shapes):
        mask = pad_mask[:, start:start + h * w].view(batch, h, w)
        valid_h = (~mask[:, :, 0]).sum(1)
        valid_w = (~mask[:, 0, :]).sum(1)
        grid_y, grid_x = torch.meshgrid(torch.linspace(0, h - 1, h, dtype=memory.dtype, device=memory.device),
                                        torch.linspace(0, w - 1, w, dtype=memory.dtype, device=memory.device),
                                        indexing="ij")
        grid = torch.cat([grid_x[..., None], grid_y[..., None]], -1)                        # [h,w,2]
        scale = torch.cat([valid_w[:, None], valid_h[:, None]], 1).view(batch, 1, 1, 2)
        grid = (grid[None].expand(batch, -1, -1, -1) + 0.5) / scale
        wh = torch.ones_like(grid) * 0.05 * (2.0 ** level)
        proposals.append(torch.cat((grid, wh), -1).view(batch, -1, 4))
        start += h * w
    proposals = torch.cat(proposals, 1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
    proposals = torch.log(proposals / (1 - proposals))
    proposals = proposals.masked_fill(pad_mask[..., None], float("inf")).masked_fill(~valid, float("inf"))
    memory = memory.masked_fill(pad_mask[..., None], 0.0).masked_fill(~valid, 0.0)
    return memory, proposals


@dataclass
class Selection:
    """The ``Q`` selected proposals.

    index [B,Q] long: token positions; boxes_unsig [B,Q,4]: refined boxes in logit
    space (not detached: the encoder's box loss flows through them);
    anchors [B,Q,4]: the plain anchor boxes (sigmoid space); queries [B,Q,C]: the
    tokens' projected memory (not detached).
    """

    index: Tensor
    boxes_unsig: Tensor
    anchors: Tensor
    queries: Tensor


def select_topk(scores: Tensor, boxes_unsig: Tensor, proposals: Tensor, memory: Tensor, k: int) -> Selection:
    """Top-``k`` tokens by ``scores [B,N]``.

    When an image has fewer tokens than ``k`` (tiny inputs), the last tokens are
    repeated so the query count stays ``k``, as the original does.
    """
    n = scores.shape[1]
    if k > n:  # a shape check, not a data-dependent branch
        extra = torch.arange(n - (k - n), n, device=scores.device) % n   # the last tokens, wrapping if needed

        def pad(t):
            return torch.cat([t, t[:, extra].detach()], dim=1)
        scores, boxes_unsig, proposals, memory = pad(scores), pad(boxes_unsig), pad(proposals), pad(memory)
    index = torch.topk(scores, k, dim=1)[1]

    def take(t):
        return torch.gather(t, 1, index[..., None].expand(-1, -1, t.shape[-1]))
    return Selection(index=index, boxes_unsig=take(boxes_unsig), anchors=take(proposals).sigmoid(), queries=take(memory))
