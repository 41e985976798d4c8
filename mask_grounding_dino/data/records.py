"""Typed records produced by the dataset readers (ODVG, COCO, label maps, inference inputs).

Readers return these instead of loose dicts so the rest of the code knows what a
field is. Boxes are floats in image pixels. Masks stay in their stored form
(:data:`MaskAnn`) until something needs pixels; ``data/masks.py`` decodes them.
Every record remembers ``source`` (file) and ``line`` (1-based; 0 when the
format has no lines) so messages can point at the offending entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

#: A mask as stored: polygons ``[[x1, y1, x2, y2, ...], ...]``, an RLE dict
#: ``{"size": [h, w], "counts": str | list[int]}``, or an ``[H, W]`` array.
MaskAnn = Union[list, dict, np.ndarray]

BoxXYXY = tuple[float, float, float, float]
BoxXYWH = tuple[float, float, float, float]


@dataclass
class Instance:
    """One object of an ODVG detection record."""

    bbox: BoxXYXY          # x1, y1, x2, y2 in pixels
    label: int             # contiguous class id (key of the label map)
    category: str          # class name
    mask: MaskAnn | None = None


@dataclass
class DetectionRecord:
    """An ODVG line with a ``detection`` block (class-labelled instances)."""

    file_name: str
    height: int
    width: int
    instances: list[Instance]
    image_id: int | str | None = None
    source: str = ""
    line: int = 0


@dataclass
class Region:
    """One grounded region of an ODVG ``grounding`` block."""

    bbox: BoxXYXY
    phrase: str
    mask: MaskAnn | None = None
    tokens_positive: list[list[int]] | None = None   # character spans [[start, end], ...]


@dataclass
class GroundingRecord:
    """An ODVG line with a ``grounding`` block (caption or referring expression)."""

    file_name: str
    height: int
    width: int
    regions: list[Region]
    caption: str | None = None
    expression: str | None = None
    empty: bool = False                 # a no-target sample (the expression matches nothing)
    image_id: int | str | None = None
    expression_id: int | str | None = None
    sent_id: int | str | None = None
    source: str = ""
    line: int = 0

    @property
    def text(self) -> str:
        """The prompt text: the expression when present, else the caption."""
        return self.expression if self.expression is not None else (self.caption or "")


OdvgRecord = Union[DetectionRecord, GroundingRecord]


@dataclass
class CocoImage:
    id: int
    file_name: str
    height: int
    width: int


@dataclass
class CocoAnnotation:
    id: int
    image_id: int
    category_id: int
    bbox: BoxXYWH                       # x, y, w, h in pixels
    segmentation: MaskAnn | None = None
    area: float = 0.0
    iscrowd: int = 0
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. referring_expression, sent_id


@dataclass
class CocoDataset:
    """A COCO json: images, annotations and categories (id -> name)."""

    images: list[CocoImage]
    annotations: list[CocoAnnotation]
    categories: dict[int, str]
    source: str = ""

    def annotations_by_image(self) -> dict[int, list[CocoAnnotation]]:
        out: dict[int, list[CocoAnnotation]] = {img.id: [] for img in self.images}
        for ann in self.annotations:
            out.setdefault(ann.image_id, []).append(ann)
        return out


@dataclass
class InferenceItem:
    """One line of ``inference.jsonl``: an image and the expression to ground in it."""

    image_path: str
    expression: str
    source: str = ""
    line: int = 0


#: Contiguous class id -> class name (``annotations_odvg_labelmap.json``, ``label_map.txt``).
LabelMap = dict[int, str]
