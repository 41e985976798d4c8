"""The field helper every spec dataclass uses, and the annotations it carries.

A spec field is an ordinary dataclass field whose ``metadata["spec"]`` holds a
:class:`FieldInfo`: the description and the TAO-style annotations that drive
validation (bounds, options, conditions) and schema generation (AutoML flags,
``popular``, titles). Keeping them on the field means one place defines a key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

#: Unbounded limit; written as ``Infinity`` in schemas, as TAO does.
INF = math.inf
#: OmegaConf's "mandatory, not yet given" marker that TAO templates use (``checkpoint: ???``).
MISSING = "???"


class _SameAsDefault:
    """Marker: the schema shows the field's runtime default."""

    def __repr__(self) -> str:
        return "SAME_AS_DEFAULT"


SAME_AS_DEFAULT = _SameAsDefault()


@dataclass(frozen=True)
class FieldInfo:
    """Annotations of one spec key.

    ``valid_min``/``valid_max`` are inclusive bounds (``INF`` for none above);
    ``valid_options`` the allowed values (an enum); ``math_cond`` a condition such
    as ``"> 0.0"`` or ``"> depends_on"`` (compared with the key named by
    ``depends_on``); ``parent_param`` marks a key others depend on (AutoML);
    ``automl_enabled`` None means "not stated" (not written to the schema).
    ``opaque`` sections are shown in schemas as one value (TAO keeps data sources
    as plain dicts); ``schema_type`` forces a schema type name (e.g. ``ordered_int``).
    ``ignore_case`` accepts options in any letter case and stores the canonical one;
    ``allow_empty`` accepts ``""`` (meaning unset) besides the options.
    ``check`` returns an error text for a value, or None when the value is fine.
    ``normalise(value, key)`` turns a value as written into the stored form before its type
    is checked (e.g. a class list typed as one string); it raises a ``UserError`` whose
    ``reason`` (else its message) becomes the key's problem line.
    ``schema_default`` is the value schemas and templates show when it differs from
    the runtime default (TAO's ``default_value`` versus ``value``: e.g.
    ``fixed_random_crop`` shows 1024 but is off unless a spec sets it).
    """

    description: str
    title: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    valid_options: tuple[Any, ...] | None = None
    option_weights: tuple[float, ...] | None = None
    math_cond: str | None = None
    depends_on: str | None = None
    parent_param: bool = False
    popular: bool = False
    automl_enabled: bool | None = None
    required: bool = False
    pattern: str | None = None
    schema_type: str | None = None
    opaque: bool = False
    ignore_case: bool = False
    allow_empty: bool = False
    check: Callable[[Any], str | None] | None = None
    normalise: Callable[[Any, str], Any] | None = None
    schema_default: Any = SAME_AS_DEFAULT


def spec_field(default: Any = dataclasses.MISSING, *, description: str, **annotations: Any) -> Any:
    """A dataclass field with spec annotations (see :class:`FieldInfo`).

    Mutable defaults (lists, dicts, dataclass instances) are deep-copied per
    instance, so ``ModelConfig()`` objects never share a list.
    """
    if "valid_options" in annotations and annotations["valid_options"] is not None:
        annotations["valid_options"] = tuple(annotations["valid_options"])
    if "option_weights" in annotations and annotations["option_weights"] is not None:
        annotations["option_weights"] = tuple(annotations["option_weights"])
    info = FieldInfo(description=description, **annotations)
    metadata = {"spec": info}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_info(field: dataclasses.Field) -> FieldInfo:
    """The annotations of a field; a bare field gets an empty description."""
    return field.metadata.get("spec") or FieldInfo(description="")


def spec_fields(cls_or_obj: Any) -> list[tuple[dataclasses.Field, FieldInfo]]:
    """The fields of a spec dataclass (type or instance) with their annotations, in order."""
    return [(f, field_info(f)) for f in dataclasses.fields(cls_or_obj)]
