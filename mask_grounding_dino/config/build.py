"""Turn a plain nested dict (YAML, overrides) into typed spec dataclasses.

Values are coerced where the intent is clear (``10`` for a float, ``"1e-4"`` for
a float, ``null`` for an unset path, ``fp32`` for ``FP32``); anything else becomes
one problem line naming the key, the value and the expected type. Unknown keys
get the nearest valid key as a suggestion. Every problem is collected, none raised
here: the caller reports them all at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any

from ..errors import UserError
from .fields import FieldInfo, field_info
from .hints import Kind, field_kinds, section_paths
from .problems import Path, Problems, format_path

_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_KIND_NAMES = {"bool": "a boolean (true/false)", "int": "an integer", "float": "a number", "str": "a string",
               "list": "a list", "dict": "a mapping", "section": "a section (mapping of keys)",
               "str_or_list": "a string or a list of strings"}


def describe(value: Any) -> str:
    """A value as the user wrote it, with its YAML type: ``'abc' (string)``."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{shown} ({names.get(type(value), type(value).__name__)})"


class SpecBuilder:
    """Builds a spec dataclass tree from dicts, recording problems in ``problems``.

    ``shorthands`` are extra top-level names (e.g. ``num_epochs``) offered when a
    root-level key is unknown.
    """

    def __init__(self, root: type, problems: Problems, shorthands: dict[str, str] | None = None) -> None:
        self.root = root
        self.problems = problems
        self.shorthands = shorthands or {}
        self._all_paths = section_paths(root)

    def build(self, data: Any) -> Any:
        return self.section(self.root, data, ())

    # -- sections --------------------------------------------------------------------------------
    def section(self, cls: type, data: Any, path: Path) -> Any:
        if data is None:
            return cls()
        if dataclasses.is_dataclass(data) and isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            self.problems.add(path, f"expected {_KIND_NAMES['section']}, got {describe(data)}")
            return cls()
        kinds = field_kinds(cls)
        infos = {f.name: field_info(f) for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in kinds:
                self.unknown_key(cls, path, key)
                continue
            converted = self.value(kinds[key], value, path + (key,), infos[key])
            if converted is not BAD:  # a bad value keeps the default so the tree stays typed
                values[key] = converted
        return cls(**values)

    def unknown_key(self, cls: type, path: Path, key: Any) -> None:
        hint = self.suggest(cls, path, str(key))
        self.problems.add(path + (str(key),), f"unknown key; did you mean {hint}?" if hint else
                          f"unknown key; valid keys here: {', '.join(field_kinds(cls))}")

    def suggest(self, cls: type, path: Path, key: str) -> str | None:
        names = list(field_kinds(cls))
        if cls is self.root:
            names += list(self.shorthands)
        lowered = {name.lower(): name for name in names}
        close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.7)
        # A shortened name ("json" for "json_file") is a likely intent too.
        close = close or sorted((n for n in lowered if len(key) >= 3 and n.startswith(key.lower())), key=len)[:1]
        if close:
            return format_path(path + (lowered[close[0]],))
        # The key may belong to another section (``model.lr`` -> ``train.optim.lr``).
        leaves = {}
        for full in self._all_paths:
            leaves.setdefault(full.rsplit(".", 1)[-1].lower(), full)
        close = difflib.get_close_matches(key.lower(), list(leaves), n=1, cutoff=0.85)
        return leaves[close[0]] if close else None

    # -- values ----------------------------------------------------------------------------------
    def value(self, kind: Kind, value: Any, path: Path, info: FieldInfo | None = None) -> Any:
        if value is None:
            return self.null(kind, path)
        if info is not None and info.normalise is not None:
            try:
                value = info.normalise(value, format_path(path))
            except UserError as exc:
                self.problems.add(path, getattr(exc, "reason", str(exc)))
                return BAD
        name = kind.name
        if name == "section":
            return self.section(kind.cls, value, path)
        if name == "list":
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, list):
                return self.wrong(kind, value, path)
            return _all_or_bad([self.value(kind.item, item, path + (i,)) for i, item in enumerate(value)])
        if name == "str_or_list":
            if isinstance(value, (list, tuple)):
                return _all_or_bad([self.value(Kind("str"), item, path + (i,)) for i, item in enumerate(value)])
            return self.value(Kind("str"), value, path, info)
        if name == "dict":
            return dict(value) if isinstance(value, dict) else self.wrong(kind, value, path)
        if name == "any":
            return value
        converted = _scalar(name, value)
        if converted is BAD:
            return self.wrong(kind, value, path)
        if name == "str" and info is not None and info.ignore_case and info.valid_options:
            canonical = {str(option).lower(): option for option in info.valid_options}
            converted = canonical.get(converted.lower(), converted)
        return converted

    def null(self, kind: Kind, path: Path) -> Any:
        """``null`` in a spec: allowed where a key is optional; means "empty" for text, lists, maps."""
        if kind.optional:
            return None
        empty = {"str": "", "list": [], "dict": {}, "str_or_list": ""}
        if kind.name in empty:
            return empty[kind.name]
        if kind.name == "section":
            return kind.cls()
        return self.wrong(kind, None, path)

    def wrong(self, kind: Kind, value: Any, path: Path) -> Any:
        expected = _KIND_NAMES.get(kind.name, kind.name)
        if kind.name == "list" and kind.item is not None and kind.item.name in _KIND_NAMES:
            expected = f"a list of {kind.item.name} values"
        if kind.optional:
            expected += " or null"
        self.problems.add(path, f"expected {expected}, got {describe(value)}")
        return BAD


#: Marks a value that could not be coerced (its problem is already recorded).
BAD = object()


def _all_or_bad(items: list) -> Any:
    return BAD if any(item is BAD for item in items) else items


def _scalar(name: str, value: Any) -> Any:
    """Coerce one scalar or return ``BAD``."""
    if name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return BAD
    if isinstance(value, bool):  # a boolean is never taken for a number or a text
        return BAD
    if name == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_TEXT.match(value.strip()):
            return int(value.strip())
        return BAD
    if name == "float":
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return BAD
        return BAD
    if name == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return str(value)
        return BAD
    return value
