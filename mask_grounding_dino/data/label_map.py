"""Label maps: contiguous class id -> class name.

Two on-disk forms, chosen by the file's extension:

* ``annotations_odvg_labelmap.json``: ``{"0": "person", "1": "car", ...}`` (ODVG training);
  a JSON list ``["person", "car"]`` is accepted too (id = position);
* ``label_map.txt`` (TAO's ``coco_raw``): one class name per line, id = line index (0-based).
  Trailing blank lines are ignored; a blank line in the middle is an error because it would
  shift every following id.
"""

from __future__ import annotations

from . import fileio
from ..errors import DataError
from .records import LabelMap, as_int, as_str


def read_label_map(path: str) -> LabelMap:
    """Read a label map (``.json`` or ``.txt``, local or URL) into ``{id: name}``, ids ascending."""
    shown = fileio.redact(path)
    if path.lower().endswith(".txt"):
        return _read_txt(path, shown)
    data = fileio.read_json(path)
    if isinstance(data, list):
        data = {str(i): name for i, name in enumerate(data)}
    if not isinstance(data, dict):
        raise DataError(f"{shown}: a label map must be a JSON object {{\"0\": \"name\", ...}}, "
                        f"got {type(data).__name__}")
    if not data:
        raise DataError(f"{shown}: the label map is empty")
    out: LabelMap = {}
    for key, name in data.items():
        class_id = as_int(key, f"{shown}: key {key!r}", minimum=0)
        out[class_id] = as_str(name, f"{shown}: class {key!r}").strip()
    return dict(sorted(out.items()))


def _read_txt(path: str, shown: str) -> LabelMap:
    lines = [line for _, line in fileio.iter_lines(path)]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{shown}: the label map is empty (expected one class name per line)")
    out: LabelMap = {}
    for index, line in enumerate(lines):
        name = line.strip()
        if not name:
            raise DataError(f"{shown} line {index + 1}: empty class name (one class per line; the id "
                            "is the line index, so a blank line would shift every following id)")
        out[index] = name
    return out


def label_map_problems(label_map: LabelMap) -> list[tuple[str, str]]:
    """``(kind, message)`` pairs for suspicious label maps: ids not ``0..K-1`` and names used
    twice (two ids with one name cannot be told apart in a caption)."""
    problems = []
    ids = sorted(label_map)
    if ids != list(range(len(ids))):
        problems.append(("label_map_not_contiguous",
                         f"class ids are not contiguous from 0: {_id_list(ids)} (expected 0..{len(ids) - 1})"))
    seen: dict[str, int] = {}
    for class_id, name in label_map.items():
        key = name.strip().lower()
        if key in seen:
            problems.append(("duplicate_class_name",
                             f"class name {name!r} is used by ids {seen[key]} and {class_id}"))
        else:
            seen[key] = class_id
    return problems


def write_label_map(path: str, label_map: LabelMap) -> None:
    """Write ``{"0": name, ...}`` (ids ascending) atomically."""
    fileio.write_json(path, {str(k): label_map[k] for k in sorted(label_map)})


def _id_list(ids: list[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return f"[{shown}{', ...' if len(ids) > limit else ''}]"
