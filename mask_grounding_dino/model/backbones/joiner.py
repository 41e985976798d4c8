"""The model's ``backbone``: ``[0]`` the backbone body, ``[1]`` the position embedding
(an ``nn.Sequential`` so parameters are named ``backbone.0.*`` as in the original)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..position_encoding import PositionEmbeddingSineHW


def downsample_mask(pad_mask: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B,H,W]`` bool pad mask -> ``[B,h,w]`` (nearest, as the original)."""
    return F.interpolate(pad_mask[None].float(), size=size).to(bool)[0]


class Joiner(nn.Sequential):
    def __init__(self, body: nn.Module, position_embedding: PositionEmbeddingSineHW):
        super().__init__(body, position_embedding)

    @property
    def num_channels(self) -> list[int]:
        return list(self[0].num_channels)

    @property
    def strides(self) -> list[int]:
        return list(self[0].strides)

    def forward(self, images: Tensor, pad_mask: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """``images [B,3,H,W]``, ``pad_mask [B,H,W]`` (True = pad) -> per returned stage:
        feature maps ``[B,C_i,h,w]``, pad masks ``[B,h,w]``, position embeddings ``[B,hidden,h,w]``."""
        features = self[0](images)
        masks = [downsample_mask(pad_mask, f.shape[-2:]) for f in features]
        pos = [self[1](m).to(f.dtype) for f, m in zip(features, masks)]
        return features, masks, pos
