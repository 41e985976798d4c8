"""Collate ``(image [3, h, w], Target)`` items into a :class:`~.batch.Batch`.

Images are zero padded right/bottom to the largest height and width of the batch, rounded
up to a multiple of ``size_divisibility`` (default 32, the stride of the deepest backbone
level: every feature map then covers the padded image exactly, so the mask branch's x4 /
x8 grids line up with input pixels). ``pixel_mask`` is True at padding, computed from each
target's ``size`` (so fixed padding done by the transforms also counts as padding).
Captions are tokenised with the same :class:`~mask_grounding_dino.text.TextProcessor`
(encoder and ``max_text_len``) the datasets built their positive maps with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..text import TextProcessor
from .batch import Batch, Target


def pad_images(images: Sequence[torch.Tensor], sizes: Sequence[tuple[int, int]],
               size_divisibility: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[3, h_i, w_i]`` images into ``[B, 3, H, W]`` (zeros right/bottom) and a
    ``[B, H, W]`` bool mask, True outside each image's valid ``sizes[i]`` (h, w)."""
    if not images:
        raise ValueError("pad_images needs at least one image")
    height = max(int(img.shape[1]) for img in images)
    width = max(int(img.shape[2]) for img in images)
    if size_divisibility > 1:
        height = -(-height // size_divisibility) * size_divisibility
        width = -(-width // size_divisibility) * size_divisibility
    batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
    pixel_mask = torch.ones((len(images), height, width), dtype=torch.bool)
    for i, (img, (h, w)) in enumerate(zip(images, sizes)):
        batch[i, :, : img.shape[1], : img.shape[2]].copy_(img)
        pixel_mask[i, :h, :w] = False
    return batch, pixel_mask


class Collator:
    """``collate_fn`` for the DataLoader: ``list[(image, Target)] -> Batch``.

    Args:
        text_processor: tokenises the captions; its ``max_text_len`` must equal the width of
            the targets' positive maps.
        size_divisibility: pad H and W up to a multiple of this (1: no rounding).
    """

    def __init__(self, *, text_processor: TextProcessor, size_divisibility: int = 32):
        self.text_processor = text_processor
        self.size_divisibility = int(size_divisibility)

    def __call__(self, items: Sequence[tuple[torch.Tensor, Target]]) -> Batch:
        images = [img for img, _ in items]
        targets = [tgt for _, tgt in items]
        width = self.text_processor.max_text_len
        for t in targets:
            if t.positive_map.shape[-1] != width or t.phrase_map.shape[-1] != width:
                raise ValueError(f"positive maps have {t.positive_map.shape[-1]} token columns but the "
                                 f"text processor uses max_text_len={width}: build datasets and collator "
                                 "with the same max_text_len")
        batch_images, pixel_mask = pad_images(images, [t.size for t in targets], self.size_divisibility)
        text = self.text_processor([t.caption for t in targets])
        return Batch(images=batch_images, pixel_mask=pixel_mask, text=text, targets=targets)
