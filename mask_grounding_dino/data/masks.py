"""Masks as stored in annotations (polygons, RLE, arrays) <-> ``[H, W]`` bool arrays.

Stored forms (:data:`~mask_grounding_dino.data.records.MaskAnn`):

* polygons: ``[[x1, y1, x2, y2, ...], ...]`` in pixels (a flat ``[x1, y1, ...]`` is taken as
  one polygon; ``[]`` is an empty mask);
* RLE: ``{"size": [h, w], "counts": [...]}`` (uncompressed, COCO's ``iscrowd`` form) or
  ``{"size": [h, w], "counts": "..."}`` (COCO's compressed string);
* arrays: an ``[H, W]`` numpy array, or the same as nested JSON lists of 0/1 (exactly H rows
  of W values; polygons never have that shape in practice).

:func:`check_mask` finds problems without decoding (cheap: the validator runs it on every
mask); :func:`decode_mask` refuses masks with fatal problems before pycocotools sees them,
so a malformed mask gives a clear :class:`DataError` rather than a wrong picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils

from ..errors import DataError
from .records import BoxXYXY, MaskAnn

#: Polygon points further than this outside the image are reported (rounding in converters
#: commonly puts edge points a fraction of a pixel outside; that is harmless).
OUTSIDE_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class MaskIssue:
    """A problem of one stored mask.

    ``kind``: ``bad_mask`` (malformed, cannot be decoded), ``mask_mismatch`` (its size is not
    the image's) or ``mask_outside_image`` (polygon points outside the image; decodes clipped).
    """

    kind: str
    message: str

    @property
    def fatal(self) -> bool:
        return self.kind != "mask_outside_image"


def mask_kind(ann: MaskAnn, height: int, width: int) -> str:
    """``"rle"``, ``"array"`` or ``"polygons"`` (``"unknown"`` for anything else)."""
    if isinstance(ann, dict):
        return "rle"
    if isinstance(ann, np.ndarray):
        return "array"
    if isinstance(ann, (list, tuple)):
        return "array" if _is_nested_binary_array(ann, height, width) else "polygons"
    return "unknown"


def _is_nested_binary_array(ann, height: int, width: int) -> bool:
    if height <= 0 or len(ann) != height or not isinstance(ann[0], (list, tuple)) or len(ann[0]) != width:
        return False
    return all(isinstance(row, (list, tuple)) and len(row) == width and set(row) <= {0, 1} for row in ann)


def check_mask(ann: MaskAnn, height: int, width: int) -> list[MaskIssue]:
    """Problems of ``ann`` for an image of ``height`` x ``width`` (empty list when fine)."""
    kind = mask_kind(ann, height, width)
    if kind == "rle":
        return _check_rle(ann, height, width)
    if kind == "array":
        shape = np.shape(ann)
        if len(shape) != 2:
            return [MaskIssue("bad_mask", f"mask array must be 2-D [H, W], got shape {list(shape)}")]
        if tuple(shape) != (height, width):
            return [MaskIssue("mask_mismatch", f"mask array is {shape[0]}x{shape[1]} (HxW) but the "
                                               f"image is {height}x{width}")]
        return []
    if kind == "polygons":
        return _check_polygons(ann, height, width)
    return [MaskIssue("bad_mask", f"mask must be polygons (list), an RLE dict or an [H, W] array, "
                                  f"got {type(ann).__name__}")]


def _check_rle(rle: dict, height: int, width: int) -> list[MaskIssue]:
    if "counts" not in rle or "size" not in rle:
        return [MaskIssue("bad_mask", f"RLE mask needs 'size' and 'counts', got keys {sorted(rle)}")]
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        return [MaskIssue("bad_mask", f"RLE 'size' must be [height, width], got {size!r}")]
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        try:
            runs = rle_string_counts(counts)
        except ValueError as exc:
            return [MaskIssue("bad_mask", f"RLE 'counts' string is not valid COCO RLE ({exc})")]
    elif isinstance(counts, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
            return [MaskIssue("bad_mask", "RLE 'counts' list must hold integers")]
        runs = list(counts)
    else:
        return [MaskIssue("bad_mask", f"RLE 'counts' must be a list or a string, got {type(counts).__name__}")]
    issues = []
    if any(v < 0 for v in runs):
        issues.append(MaskIssue("bad_mask", "RLE 'counts' has negative run lengths"))
    elif sum(runs) != h * w:
        issues.append(MaskIssue("bad_mask", f"RLE 'counts' cover {sum(runs)} pixels but 'size' "
                                            f"{h}x{w} has {h * w}"))
    if (h, w) != (height, width):
        issues.append(MaskIssue("mask_mismatch", f"RLE size is {h}x{w} (HxW) but the image is "
                                                 f"{height}x{width}"))
    return issues


def _polygon_list(ann) -> list:
    """``ann`` as a list of polygons (a flat list of numbers is one polygon)."""
    if len(ann) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ann):
        return [ann]
    return list(ann)


def _check_polygons(ann, height: int, width: int) -> list[MaskIssue]:
    # Plain Python on lists: polygons are short, and numpy's per-call cost dominated the
    # validator's time on big datasets.
    issues = []
    for index, poly in enumerate(_polygon_list(ann)):
        coords = poly.reshape(-1).tolist() if isinstance(poly, np.ndarray) else poly
        if not isinstance(coords, (list, tuple)):
            return [MaskIssue("bad_mask", f"polygon {index} must be a list of numbers [x1, y1, x2, y2, ...]")]
        try:
            total = sum(coords)  # TypeError for anything but numbers; inf/nan propagate
        except TypeError:
            return [MaskIssue("bad_mask", f"polygon {index} must be a flat list of numbers [x1, y1, x2, y2, ...]")]
        if len(coords) % 2 or len(coords) < 6:
            return [MaskIssue("bad_mask", f"polygon {index} has {len(coords)} numbers; a polygon needs an "
                                          "even count of at least 6 (3 points x, y)")]
        if not math.isfinite(total):
            return [MaskIssue("bad_mask", f"polygon {index} has non-finite coordinates")]
        xs, ys = coords[0::2], coords[1::2]
        x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
        tol = OUTSIDE_TOLERANCE_PX
        if not issues and (x_lo < -tol or y_lo < -tol or x_hi > width + tol or y_hi > height + tol):
            issues.append(MaskIssue(  # one message per mask is enough
                "mask_outside_image",
                f"polygon {index} reaches x {x_lo:g}..{x_hi:g}, y {y_lo:g}..{y_hi:g} outside the "
                f"{width}x{height} (WxH) image"))
    return issues


def rle_string_counts(counts: str | bytes) -> list[int]:
    """Run lengths of a COCO compressed RLE string.

    The format: each run is a little-endian sequence of 5-bit groups stored as characters
    ``chr(48 + group)``, bit 0x20 meaning "more groups follow" and bit 0x10 of the last group
    the sign; from the third run on, the value is a difference to the run two places before.
    """
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    pos, n = 0, len(text)
    while pos < n:
        value, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError("truncated run")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {text[pos]!r} at {pos} is outside the RLE alphabet")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _to_rle(ann: MaskAnn, height: int, width: int) -> dict:
    """A pycocotools RLE (compressed bytes counts) for a checked, non-array ``ann``."""
    if isinstance(ann, dict):
        if isinstance(ann["counts"], (list, tuple)):
            return mask_utils.frPyObjects({"size": list(ann["size"]), "counts": list(ann["counts"])}, height, width)
        counts = ann["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    polys = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in _polygon_list(ann)]
    return mask_utils.merge(mask_utils.frPyObjects(polys, height, width))


def decode_mask(ann: MaskAnn, height: int, width: int, where: str = "") -> np.ndarray:
    """``ann`` as an ``[height, width]`` bool array.

    Raises :class:`DataError` (prefixed with ``where``, e.g. ``"a.jsonl line 17: mask"``) when
    the mask is malformed or its size is not ``height`` x ``width``. Polygon points outside the
    image are clipped (not an error).
    """
    if ann is None:
        raise DataError(f"{where or 'mask'}: no mask (null)")
    fatal = [issue.message for issue in check_mask(ann, height, width) if issue.fatal]
    if fatal:
        raise DataError(f"{where or 'mask'}: " + "; ".join(fatal))
    kind = mask_kind(ann, height, width)
    if kind == "array":
        return np.asarray(ann) != 0
    if kind == "polygons" and not _polygon_list(ann):
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(_to_rle(ann, height, width)).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an ``[H, W]`` mask: ``{"size": [h, w], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_rle needs an [H, W] mask, got shape {list(mask.shape)}")
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def mask_area(mask: np.ndarray | MaskAnn, height: int | None = None, width: int | None = None) -> int:
    """Foreground pixel count of a decoded mask or a stored one (polygons need the image size)."""
    if isinstance(mask, np.ndarray):
        return int(np.count_nonzero(mask))
    if isinstance(mask, dict) and isinstance(mask.get("counts"), (list, tuple)):
        return int(sum(mask["counts"][1::2]))  # runs alternate 0s, 1s, 0s... starting with 0s
    if isinstance(mask, dict):
        h, w = mask["size"]
        return int(mask_utils.area(_to_rle(mask, int(h), int(w))))
    if height is None or width is None:
        raise TypeError("mask_area of polygons needs height and width")
    return int(np.count_nonzero(decode_mask(mask, height, width)))


def mask_to_bbox(mask: np.ndarray) -> BoxXYXY | None:
    """Tight ``(x1, y1, x2, y2)`` box around an ``[H, W]`` mask, in pixel edges (a single
    pixel at column 3, row 5 gives ``(3, 5, 4, 6)``); ``None`` for an empty mask."""
    mask = np.asarray(mask) != 0
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
