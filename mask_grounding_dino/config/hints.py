"""What kind of value each spec field holds, read once from the dataclass type hints.

Loading, validation and schema generation all ask the same questions ("is this a
list of ints?", "is None allowed?"); :func:`field_kinds` answers them from the
annotations so no module re-parses ``typing`` objects.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

SCALARS = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class Kind:
    """A field's value kind.

    ``name`` is one of bool, int, float, str, list, dict, section (a dataclass),
    str_or_list (a string or a list of strings) or any. ``optional``: None is
    allowed. ``item``: the kind of list items. ``cls``: the section's dataclass.
    """

    name: str
    optional: bool = False
    item: "Kind | None" = None
    cls: type | None = None


def kind_of(hint: Any) -> Kind:
    """The :class:`Kind` of a resolved type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        if len(members) == 1:
            return dataclasses.replace(kind_of(members[0]), optional=optional)
        names = {kind_of(m).name for m in members}
        if names == {"str", "list"}:
            return Kind("str_or_list", optional, item=Kind("str"))
        return Kind("any", optional)
    if hint in SCALARS:
        return Kind(SCALARS[hint])
    if origin is list or hint is list:
        args = typing.get_args(hint)
        return Kind("list", item=kind_of(args[0]) if args else Kind("any"))
    if origin is dict or hint is dict:
        return Kind("dict")
    if dataclasses.is_dataclass(hint):
        return Kind("section", cls=hint)
    return Kind("any")


@functools.lru_cache(maxsize=None)
def field_kinds(cls: type) -> dict[str, Kind]:
    """Field name -> :class:`Kind` for a spec dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: kind_of(hints[f.name]) for f in dataclasses.fields(cls)}


def section_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key path under a section (sections and leaves; list items not expanded)."""
    paths = []
    for name, kind in field_kinds(cls).items():
        path = f"{prefix}{name}"
        paths.append(path)
        if kind.name == "section":
            paths.extend(section_paths(kind.cls, path + "."))
    return paths
