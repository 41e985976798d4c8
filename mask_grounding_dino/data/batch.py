"""The training/evaluation batch contract: :class:`Target` per image, :class:`Batch` per step.

Shapes (N instances, P phrases, T = ``max_text_len``, h x w the transformed unpadded size)::

    Target.boxes         [N, 4] float  cxcywh, normalised by (w, h)
    Target.labels        [N]    long   index of the instance's phrase in ``phrases``
    Target.positive_map  [N, T] float  row-normalised token weights of the instance's phrase
    Target.masks         [N, h, w] bool, or None (no masks)
    Target.phrase_map    [P, T] float  row-normalised token weights of each phrase
    Target.class_ids     [N]    long   dataset class id (OD) or -1 (VG)

    Batch.images         [B, 3, H, W] float normalised; zero padding right/bottom
    Batch.pixel_mask     [B, H, W] bool, True at padding
    Batch.text           TextInputs (L <= T tokens); positive maps index the same tokens
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..text import TextInputs


@dataclass
class Target:
    """Annotations of one transformed image (see the module docstring for shapes).

    ``size`` is (h, w) after the transforms (before batch padding); ``orig_size`` is the
    image's (H, W) as stored. ``empty`` marks a no-target sample (VG). ``file_name`` and
    ``expression_id`` identify the sample for evaluators and result files.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    positive_map: torch.Tensor
    masks: torch.Tensor | None
    phrases: list[str]
    phrase_map: torch.Tensor
    caption: str
    empty: bool
    image_id: int | str | None
    size: tuple[int, int]
    orig_size: tuple[int, int]
    class_ids: torch.Tensor
    file_name: str = ""
    expression_id: int | str | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def to(self, device, non_blocking: bool = False) -> "Target":
        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return replace(self, boxes=move(self.boxes), labels=move(self.labels),
                       positive_map=move(self.positive_map), masks=move(self.masks),
                       phrase_map=move(self.phrase_map), class_ids=move(self.class_ids))

    def pin_memory(self) -> "Target":
        def pin(t):
            return None if t is None else t.pin_memory()

        return replace(self, boxes=pin(self.boxes), labels=pin(self.labels),
                       positive_map=pin(self.positive_map), masks=pin(self.masks),
                       phrase_map=pin(self.phrase_map), class_ids=pin(self.class_ids))


@dataclass
class Batch:
    """A collated batch: padded images, their padding mask, tokenised captions, targets."""

    images: torch.Tensor
    pixel_mask: torch.Tensor
    text: TextInputs
    targets: list[Target] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device, non_blocking: bool = False) -> "Batch":
        return Batch(images=self.images.to(device, non_blocking=non_blocking),
                     pixel_mask=self.pixel_mask.to(device, non_blocking=non_blocking),
                     text=self.text.to(device, non_blocking=non_blocking),
                     targets=[t.to(device, non_blocking=non_blocking) for t in self.targets])

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader when ``pin_memory=True`` (custom batch types must pin themselves)."""
        text = TextInputs(**{k: v.pin_memory() for k, v in vars(self.text).items()})
        return Batch(images=self.images.pin_memory(), pixel_mask=self.pixel_mask.pin_memory(),
                     text=text, targets=[t.pin_memory() for t in self.targets])
