"""Inference inputs: ``inference.jsonl`` (VG) and caption lists (OD).

* ``inference.jsonl``: one object per line, ``{"image_path": "images/0001.jpg",
  "expression": "the red car on the left"}`` (TAO's keys; the path is relative to the image
  source).
* OD captions (``infer_data_sources.captions``): a list of class names, a prompt string
  ``"person . car . dog"`` (split at ``.``, the delimiter the model itself splits phrases at),
  or the path of a label map (``label_map.txt`` of ``coco_raw``, or a label map json).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import fileio
from ..errors import DataError
from .label_map import read_label_map
from .records import InferenceItem, as_str, require

_LABEL_MAP_SUFFIXES = (".txt", ".json")


def iter_inference_jsonl(path: str) -> Iterator[InferenceItem]:
    """Stream the items of an ``inference.jsonl`` (local path or URL)."""
    source = fileio.redact(path)
    for line, text in fileio.iter_lines(path):
        if not text.strip():
            continue
        where = f"{source} line {line}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        yield InferenceItem(
            image_path=as_str(require(obj, "image_path", where), f"{where}: image_path"),
            expression=as_str(require(obj, "expression", where), f"{where}: expression"),
            source=source, line=line,
        )


def read_inference_jsonl(path: str) -> list[InferenceItem]:
    """All items of an ``inference.jsonl``; an empty file is an error (nothing to infer)."""
    items = list(iter_inference_jsonl(path))
    if not items:
        raise DataError(f"{fileio.redact(path)}: no items (expected one {{\"image_path\", \"expression\"}} "
                        "object per line)")
    return items


def parse_captions(value: Any, where: str = "captions") -> list[str]:
    """Class names from a list, a ``"a . b . c"`` string, or a label map path.

    Names are stripped, empty pieces dropped and duplicates removed (first kept), so the
    order of the result is the order of the prompt.
    """
    if isinstance(value, (list, tuple)) and len(value) == 1 and _looks_like_label_map(value[0]):
        value = value[0]
    if isinstance(value, str):
        if _looks_like_label_map(value):
            names = list(read_label_map(value).values())
        else:
            names = value.split(".")
    elif isinstance(value, (list, tuple)):
        names = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise DataError(f"{where}[{i}] must be a class name (string), got {item!r}")
            names.append(item.strip().rstrip(".").strip())
    else:
        raise DataError(f"{where} must be a list of class names, a 'a . b . c' string or a label map "
                        f"path, got {type(value).__name__}")
    out: list[str] = []
    for name in (n.strip() for n in names):
        if name and name not in out:
            out.append(name)
    if not out:
        raise DataError(f"{where}: no class names in {value!r}")
    return out


def _looks_like_label_map(value: Any) -> bool:
    """A string that is a path to a label map: ends with .txt/.json and has no spaces (a path
    that does not exist then fails with "file not found", not as two odd class names)."""
    return (isinstance(value, str) and value.lower().endswith(_LABEL_MAP_SUFFIXES)
            and not any(ch.isspace() for ch in value.strip()))
