"""Typed records produced by the dataset readers (ODVG, COCO, label maps, inference inputs).

Readers return these instead of loose dicts so the rest of the code knows what a
field is. Boxes are floats in image pixels. Masks stay in their stored form
(:data:`MaskAnn`) until something needs pixels; ``data/masks.py`` decodes them.
Every record remembers ``source`` (file) and ``line`` (1-based; 0 when the
format has no lines) so messages can point at the offending entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..errors import DataError

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


# --- Field checks shared by the readers -------------------------------------------------
# Each takes ``where`` (e.g. "annotations_odvg.jsonl line 17: detection.instances[2].bbox")
# and raises DataError naming it, what was found and what is allowed.

_JSON_NUMBERS = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))


def as_box(value: Any, where: str, layout: str = "[x1, y1, x2, y2]") -> tuple[float, float, float, float]:
    """A list of 4 finite numbers, as floats."""
    if type(value) is list and len(value) == 4:  # fast path: plain JSON numbers (hot in the validator)
        a, b, c, d = value
        if type(a) in _JSON_NUMBERS and type(b) in _JSON_NUMBERS and type(c) in _JSON_NUMBERS \
                and type(d) in _JSON_NUMBERS and math.isfinite(a + b + c + d):
            return (float(a), float(b), float(c), float(d))
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise DataError(f"{where} must be a list of 4 numbers {layout}, got {_short(value)}")
    return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))


def as_int(value: Any, where: str, minimum: int | None = None) -> int:
    """An integer (also an integral float or a digit string such as ``"3"``)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    if number is None:
        raise DataError(f"{where} must be an integer, got {_short(value)}")
    if minimum is not None and number < minimum:
        raise DataError(f"{where} must be >= {minimum}, got {number}")
    return number


def as_str(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(f"{where} must be a {'' if allow_empty else 'non-empty '}string, got {_short(value)}")
    return value


def as_id(value: Any, where: str) -> int | str:
    """An id kept as stored: an integer or a non-empty string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        return value
    raise DataError(f"{where} must be an integer or a string, got {_short(value)}")


def require(obj: dict, key: str, where: str) -> Any:
    """``obj[key]``, or a DataError naming the missing key and the keys that are there."""
    if not isinstance(obj, dict):
        raise DataError(f"{where} must be a JSON object, got {_short(obj)}")
    if key not in obj:
        present = ", ".join(sorted(map(str, obj))) or "none"
        raise DataError(f"{where}: missing key '{key}' (keys present: {present})")
    return obj[key]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
