"""Per-image detections: the typed result of post-processing.

One :class:`Detections` per image. ``labels`` index the prompt's phrase list
(the class list in OD mode; global class ids after long-prompt chunks are
merged), while ``phrases`` holds, for every detection, the text to show: the
class name in OD, the words of the caption that fired in VG (whole words only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

Index = Union[Tensor, slice, Sequence[int], int]


@dataclass
class DetectionArrays:
    """:class:`Detections` as numpy arrays (for writers and metrics)."""

    boxes: np.ndarray            # [N, 4] float32 xyxy, original pixels
    scores: np.ndarray           # [N] float32
    labels: np.ndarray           # [N] int64
    phrases: list[str]           # N
    masks: Optional[np.ndarray]  # [N, H, W] bool or None
    no_target: bool
    image_size: Optional[tuple[int, int]]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Detections:
    """Detections of one image, sorted by descending score.

    boxes:      [N, 4] float, xyxy in pixels of the original image
    scores:     [N] float in [0, 1]
    labels:     [N] long, index of the phrase (class) in the prompt
    phrases:    N strings, the resolved phrase of each detection (whole words)
    masks:      [N, H, W] bool at the original image size, or None (no mask branch)
    no_target:  the region head judged that nothing in the image matches the prompt
    image_size: (H, W) of the original image, when known
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    phrases: list[str]
    masks: Optional[Tensor] = None
    no_target: bool = False
    image_size: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        n = int(self.scores.shape[0])
        if self.boxes.shape != (n, 4) or self.labels.shape != (n,) or len(self.phrases) != n:
            raise ValueError(f"Detections: inconsistent sizes: boxes {tuple(self.boxes.shape)}, scores "
                             f"{tuple(self.scores.shape)}, labels {tuple(self.labels.shape)}, "
                             f"{len(self.phrases)} phrases")
        if self.masks is not None:
            if self.masks.dim() != 3 or self.masks.shape[0] != n:
                raise ValueError(f"Detections: masks must be [N={n}, H, W], got {tuple(self.masks.shape)}")
            if self.image_size is not None and tuple(self.masks.shape[1:]) != tuple(self.image_size):
                raise ValueError(f"Detections: masks are {tuple(self.masks.shape[1:])}, image_size is "
                                 f"{tuple(self.image_size)}")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def device(self) -> torch.device:
        return self.scores.device

    @classmethod
    def empty(cls, image_size: Optional[tuple[int, int]] = None, *, with_masks: bool = False,
              no_target: bool = False, device: torch.device | str | None = None) -> "Detections":
        """No detections; masks ``[0, H, W]`` when ``with_masks`` (needs ``image_size``)."""
        masks = None
        if with_masks:
            if image_size is None:
                raise ValueError("Detections.empty(with_masks=True) needs image_size")
            masks = torch.zeros((0, *image_size), dtype=torch.bool, device=device)
        return cls(boxes=torch.zeros((0, 4), device=device), scores=torch.zeros((0,), device=device),
                   labels=torch.zeros((0,), dtype=torch.long, device=device), phrases=[], masks=masks,
                   no_target=no_target, image_size=image_size)

    def select(self, index: Index) -> "Detections":
        """The detections at ``index`` (bool mask, index tensor/list, slice or int), in that order."""
        if isinstance(index, int):
            index = [index]
        if isinstance(index, slice):
            rows = list(range(len(self)))[index]
        else:
            idx = torch.as_tensor(index, device=self.device)
            if idx.dtype == torch.bool:
                if idx.shape != (len(self),):
                    raise ValueError(f"Detections.select: bool mask of shape {tuple(idx.shape)} for "
                                     f"{len(self)} detections")
                idx = idx.nonzero().flatten()
            rows = idx.long().flatten().tolist()
        take = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        return Detections(boxes=self.boxes[take], scores=self.scores[take], labels=self.labels[take],
                          phrases=[self.phrases[i] for i in rows],
                          masks=None if self.masks is None else self.masks[take],
                          no_target=self.no_target, image_size=self.image_size)

    def to(self, device: torch.device | str) -> "Detections":
        return Detections(boxes=self.boxes.to(device), scores=self.scores.to(device),
                          labels=self.labels.to(device), phrases=list(self.phrases),
                          masks=None if self.masks is None else self.masks.to(device),
                          no_target=self.no_target, image_size=self.image_size)

    def numpy(self) -> DetectionArrays:
        return DetectionArrays(
            boxes=self.boxes.detach().cpu().float().numpy(),
            scores=self.scores.detach().cpu().float().numpy(),
            labels=self.labels.detach().cpu().long().numpy(),
            phrases=list(self.phrases),
            masks=None if self.masks is None else self.masks.detach().cpu().bool().numpy(),
            no_target=self.no_target, image_size=self.image_size)

    @classmethod
    def cat(cls, items: Sequence["Detections"]) -> "Detections":
        """Concatenate detections of the same image (e.g. from several prompt chunks).

        The result is not re-sorted; ``no_target`` holds only when every part says so.
        """
        if not items:
            raise ValueError("Detections.cat needs at least one item")
        with_masks = {d.masks is not None for d in items}
        sizes = {d.image_size for d in items if d.image_size is not None}
        if len(with_masks) > 1 or len(sizes) > 1:
            raise ValueError("Detections.cat: parts disagree on masks or image size")
        masks = torch.cat([d.masks for d in items]) if items[0].masks is not None else None
        return cls(boxes=torch.cat([d.boxes for d in items]), scores=torch.cat([d.scores for d in items]),
                   labels=torch.cat([d.labels for d in items]),
                   phrases=[p for d in items for p in d.phrases], masks=masks,
                   no_target=all(d.no_target for d in items),
                   image_size=next(iter(sizes)) if sizes else None)
