"""Inference inputs: ``inference.jsonl`` (VG) and caption lists (OD).

* ``inference.jsonl``: one object per line, ``{"image_path": "images/0001.jpg",
  "expression": "the red car on the left"}`` (TAO's keys; the path is relative to the image
  source).
* OD captions (``infer_data_sources.captions``): a list of class names, a prompt string
  ``"person . car . dog"`` or ``"person, car, dog"`` (``text/class_names.py``), or the path of
  a label map (``label_map.txt`` of ``coco_raw``, or a label map json).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import fileio
from ..errors import DataError
from ..text.class_names import ClassListError, class_names
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


def parse_captions(value: Any, where: str = "captions", *, shell_hint: bool = True) -> list[str]:
    """Class names from any form :func:`~mask_grounding_dino.text.class_names.class_names`
    reads (a list, ``"a . b"``, ``"a, b"``), or from a label map path (alone or as the one
    list item). The result is the prompt's phrases in order, without duplicates."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and _looks_like_label_map(value[0]):
        value = value[0]
    if _looks_like_label_map(value):
        value = list(read_label_map(value).values())
    try:
        return class_names(value, where, shell_hint=shell_hint)
    except ClassListError as exc:
        raise DataError(exc.problems) from None


def _looks_like_label_map(value: Any) -> bool:
    """A string that is a path to a label map: ends with .txt/.json and has no spaces (a path
    that does not exist then fails with "file not found", not as two odd class names)."""
    return (isinstance(value, str) and value.lower().endswith(_LABEL_MAP_SUFFIXES)
            and not any(ch.isspace() for ch in value.strip()))
