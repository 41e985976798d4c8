"""ODVG jsonl: one image per line with a ``detection`` or a ``grounding`` block.

Detection line::

    {"file_name": "images/0001.jpg", "height": 480, "width": 640, "image_id": 1,
     "detection": {"instances": [{"bbox": [x1, y1, x2, y2], "label": 0, "category": "person",
                                  "mask": <polygons | RLE | array>}]}}

Grounding line (caption style, or Mask Grounding DINO's referring style with ``expression``)::

    {"file_name": ..., "height": ..., "width": ...,
     "grounding": {"caption": "a man riding a horse", "expression": "the man on the left",
                   "empty": false, "expression_id": 7, "sent_id": 12,
                   "regions": [{"bbox": [...], "phrase": "man", "mask": ...,
                                "tokens_positive": [[2, 5]]}]}}

Boxes are xyxy in pixels. ``expression``, ``empty``, ``expression_id`` and ``sent_id`` are read
from the grounding block, or from the top level of the line when absent there. A region
without ``phrase`` in an expression record takes the expression as its phrase (TAO's rule:
the whole expression is then class 0). Lines are numbered from 1; blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import fileio
from ..errors import DataError
from .records import (DetectionRecord, GroundingRecord, Instance, OdvgRecord, Region, as_box, as_id,
                      as_int, as_str, require)

#: Called with the error of a bad line; iteration then goes on with the next line.
ErrorHandler = Callable[[DataError], None]


def iter_odvg(path: str, on_error: ErrorHandler | None = None) -> Iterator[OdvgRecord]:
    """Stream the records of an ODVG jsonl (local path or URL), line by line.

    Bad JSON or a missing/ill-typed key raises ``DataError("<path> line 17: ...")``, or, when
    ``on_error`` is given, is passed to it and the line is skipped.
    """
    source = fileio.redact(path)
    for line, text in fileio.iter_lines(path):
        if not text.strip():
            continue
        try:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{source} line {line}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
            yield parse_odvg_record(obj, source, line)
        except DataError as exc:
            if on_error is None:
                raise
            on_error(exc)


def read_odvg(path: str) -> list[OdvgRecord]:
    """All records of an ODVG jsonl (see :func:`iter_odvg`)."""
    return list(iter_odvg(path))


def parse_odvg_record(obj: Any, source: str = "", line: int = 0) -> OdvgRecord:
    """One decoded ODVG line -> :class:`DetectionRecord` or :class:`GroundingRecord`."""
    where = f"{source} line {line}" if source else f"line {line}"
    if not isinstance(obj, dict):
        raise DataError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
    file_name = as_str(require(obj, "file_name", where), f"{where}: file_name")
    height = as_int(require(obj, "height", where), f"{where}: height", minimum=1)
    width = as_int(require(obj, "width", where), f"{where}: width", minimum=1)
    image_id = as_id(obj["image_id"], f"{where}: image_id") if obj.get("image_id") is not None else None
    has_det, has_gnd = "detection" in obj, "grounding" in obj
    if has_det == has_gnd:
        what = "both" if has_det else "neither"
        raise DataError(f"{where}: a line needs exactly one of 'detection' (class-labelled instances) or "
                        f"'grounding' (caption / expression with regions); it has {what}")
    common = dict(file_name=file_name, height=height, width=width, image_id=image_id, source=source, line=line)
    if has_det:
        return DetectionRecord(instances=_instances(obj["detection"], where), **common)
    return _grounding(obj, where, common)


def _instances(block: Any, where: str) -> list[Instance]:
    items = require(block, "instances", f"{where}: detection")
    if not isinstance(items, list):
        raise DataError(f"{where}: detection.instances must be a list, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}: detection.instances[{i}]"
        label = as_int(require(item, "label", at), f"{at}.label", minimum=0)
        category = item.get("category")
        out.append(Instance(
            bbox=as_box(require(item, "bbox", at), f"{at}.bbox"),
            label=label,
            category=as_str(category, f"{at}.category") if category is not None else "",
            mask=item.get("mask"),
        ))
    return out


def _grounding(obj: dict, where: str, common: dict) -> GroundingRecord:
    block = obj["grounding"]
    if not isinstance(block, dict):
        raise DataError(f"{where}: grounding must be a JSON object, got {type(block).__name__}")

    def pick(key: str) -> Any:
        return block[key] if block.get(key) is not None else obj.get(key)

    caption = pick("caption")
    expression = pick("expression")
    caption = as_str(caption, f"{where}: grounding.caption", allow_empty=True) if caption is not None else None
    expression = as_str(expression, f"{where}: grounding.expression") if expression is not None else None
    text = expression if expression is not None else caption
    if not text:
        raise DataError(f"{where}: grounding needs a non-empty 'caption' or 'expression'")
    empty = pick("empty")
    if empty is not None and not isinstance(empty, bool):
        raise DataError(f"{where}: grounding.empty must be true or false, got {empty!r}")
    regions_raw = require(block, "regions", f"{where}: grounding")
    if not isinstance(regions_raw, list):
        raise DataError(f"{where}: grounding.regions must be a list, got {type(regions_raw).__name__}")
    regions = [_region(item, f"{where}: grounding.regions[{i}]", expression, text)
               for i, item in enumerate(regions_raw)]
    expression_id, sent_id = pick("expression_id"), pick("sent_id")
    return GroundingRecord(
        regions=regions, caption=caption, expression=expression, empty=bool(empty),
        expression_id=as_id(expression_id, f"{where}: expression_id") if expression_id is not None else None,
        sent_id=as_id(sent_id, f"{where}: sent_id") if sent_id is not None else None,
        **common,
    )


def _region(item: Any, at: str, expression: str | None, text: str) -> Region:
    phrase = item.get("phrase") if isinstance(item, dict) else None
    if phrase is None and expression is not None:
        phrase = expression
    bbox = as_box(require(item, "bbox", at), f"{at}.bbox")
    phrase = as_str(require(item, "phrase", at) if phrase is None else phrase, f"{at}.phrase")
    spans = item.get("tokens_positive")
    return Region(bbox=bbox, phrase=phrase, mask=item.get("mask"),
                  tokens_positive=_spans(spans, f"{at}.tokens_positive", len(text)) if spans is not None else None)


def _spans(value: Any, at: str, text_len: int) -> list[list[int]]:
    """Character spans ``[[start, end], ...]`` with ``0 <= start < end <= len(text)``."""
    if not isinstance(value, list):
        raise DataError(f"{at} must be a list of [start, end] pairs, got {value!r}")
    spans = []
    for pair in value:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
            raise DataError(f"{at} must be a list of [start, end] integer pairs, got {pair!r}")
        start, end = pair
        if not 0 <= start < end <= text_len:
            raise DataError(f"{at}: span [{start}, {end}] is outside the text (length {text_len}); "
                            "spans are character offsets with 0 <= start < end <= length")
        spans.append([start, end])
    return spans


def record_to_dict(record: OdvgRecord) -> dict:
    """The ODVG json object of a record (inverse of :func:`parse_odvg_record`)."""
    out: dict[str, Any] = {"file_name": record.file_name, "height": record.height, "width": record.width}
    if record.image_id is not None:
        out["image_id"] = record.image_id
    if isinstance(record, DetectionRecord):
        instances = []
        for inst in record.instances:
            item: dict[str, Any] = {"bbox": list(inst.bbox), "label": inst.label, "category": inst.category}
            if inst.mask is not None:
                item["mask"] = _jsonable(inst.mask)
            instances.append(item)
        out["detection"] = {"instances": instances}
        return out
    block: dict[str, Any] = {}
    if record.caption is not None:
        block["caption"] = record.caption
    if record.expression is not None:
        block["expression"] = record.expression
    if record.empty:
        block["empty"] = True
    for key in ("expression_id", "sent_id"):
        if getattr(record, key) is not None:
            block[key] = getattr(record, key)
    regions = []
    for reg in record.regions:
        item = {"bbox": list(reg.bbox), "phrase": reg.phrase}
        if reg.mask is not None:
            item["mask"] = _jsonable(reg.mask)
        if reg.tokens_positive is not None:
            item["tokens_positive"] = reg.tokens_positive
        regions.append(item)
    block["regions"] = regions
    out["grounding"] = block
    return out


def _jsonable(mask: Any) -> Any:
    return mask.astype(int).tolist() if hasattr(mask, "tolist") else mask


def write_odvg(path: str, records: Iterable[OdvgRecord | dict]) -> int:
    """Write records (or ready ODVG dicts) as jsonl, atomically; returns the line count."""
    count = 0
    with fileio.atomic_write(path) as handle:
        for record in records:
            obj = record if isinstance(record, dict) else record_to_dict(record)
            handle.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")
            count += 1
    return count
