"""What the split entry points pass between them: the image side (backbone +
input projections, computed once per image) and the text side (BERT + ``feat_map``,
computed once per caption; cacheable when the text encoder is frozen)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import Tensor


@dataclass
class ImageFeatures:
    """Multi-scale image features, one entry per feature level (finest first).

    srcs:   [B, C, h_l, w_l] projected to ``hidden_dim``
    masks:  [B, h_l, w_l] bool, True = padding
    pos:    [B, C, h_l, w_l] sine position embeddings (without the level embedding)
    strides: the level strides (8, 16, 32, 64 for TAO's default)
    image_sizes: [B, 2] (h, w) of each image before padding, in input pixels
    input_size: (H, W) of the padded input tensor
    """

    srcs: list[Tensor]
    masks: list[Tensor]
    pos: list[Tensor]
    strides: list[int]
    image_sizes: Tensor
    input_size: tuple[int, int]

    @property
    def batch_size(self) -> int:
        return int(self.srcs[0].shape[0])

    def select(self, index) -> "ImageFeatures":
        """Rows ``index`` (a slice or index tensor) of the batch."""
        return ImageFeatures([s[index] for s in self.srcs], [m[index] for m in self.masks],
                             [p[index] for p in self.pos], list(self.strides), self.image_sizes[index],
                             self.input_size)


@dataclass
class TextFeatures:
    """Encoded captions, truncated to ``max_text_len`` tokens (L).

    encoded:              [B, L, C] BERT features projected by ``feat_map``
    token_mask:           [B, L] bool, True at real tokens
    position_ids:         [B, L] long, restarting in each phrase
    self_attention_masks: [B, L, L] bool, True where token i may attend to token j
    """

    encoded: Tensor
    token_mask: Tensor
    position_ids: Tensor
    self_attention_masks: Tensor

    def select(self, index) -> "TextFeatures":
        return TextFeatures(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def expand(self, batch: int) -> "TextFeatures":
        """Repeat a single caption (batch 1) for ``batch`` images."""
        if self.encoded.shape[0] == batch:
            return self
        return TextFeatures(**{f.name: getattr(self, f.name).expand(batch, *getattr(self, f.name).shape[1:])
                               for f in fields(self)})

    def detach(self) -> "TextFeatures":
        return TextFeatures(**{f.name: getattr(self, f.name).detach() for f in fields(self)})
