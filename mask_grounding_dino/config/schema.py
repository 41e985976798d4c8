"""Schemas, manifest and spec templates generated from the spec dataclasses, in TAO's layout.

``schemas/<action>.schema.json`` has, like TAO's: the sections the action reads
(the common ones plus its own), per-key ``type``/``default``/``minimum``/``maximum``/
``enum``/``math_cond``/``depends_on``/``parent_param``/``popular``/``automl_enabled``,
per-section lists of AutoML-enabled and -disabled keys, and at the top the global
lists, the ``popular`` defaults and ``x_tao_schema``. ``references/spec_template_<action>.yaml``
is the schema's top-level ``default`` as YAML, in field order.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .experiment import ACTION_SECTIONS, ACTIONS, ExperimentConfig
from .fields import SAME_AS_DEFAULT, FieldInfo, field_info
from .hints import Kind, field_kinds
from .loader import dump_yaml, spec_to_dict

NETWORK_ARCH = "mask_grounding_dino"
MODEL_ID = "mask-grounding-dino"
SCHEMA_VERSION = 1
_SCALAR_TYPES = {"bool": "bool", "int": "int", "float": "float", "str": "string", "list": "list",
                 "dict": "collection", "str_or_list": "list", "any": "string"}


def action_sections(action: str) -> list[str]:
    """Top-level keys an action's schema shows: all but the other actions' own sections."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return [name for name in field_kinds(ExperimentConfig)
            if name not in ACTION_SECTIONS or name == action]


def schema_default(f: dataclasses.Field, info: FieldInfo, kind: Kind) -> Any:
    """The value a schema shows for a field: its ``schema_default`` or runtime default, None dropped."""
    if info.schema_default is not SAME_AS_DEFAULT:
        value = info.schema_default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = f.default
    value = spec_to_dict(value, drop_none=True)
    if kind.name == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def section_default(cls: type) -> dict:
    """Schema default of a whole section (keys whose default is None are left out, as TAO does)."""
    out = {}
    kinds = field_kinds(cls)
    for f in dataclasses.fields(cls):
        info, kind = field_info(f), kinds[f.name]
        if kind.name == "section" and not info.opaque and info.schema_default is SAME_AS_DEFAULT:
            out[f.name] = section_default(kind.cls)
            continue
        value = schema_default(f, info, kind)
        if value is not None:
            out[f.name] = value
    return out


def _type_name(kind: Kind, info: FieldInfo) -> str:
    if info.schema_type:
        return info.schema_type
    if info.valid_options is not None:
        return "ordered_int" if kind.name == "int" else "categorical"
    if kind.name == "section":
        return "collection"
    return _SCALAR_TYPES.get(kind.name, "string")


def field_node(f: dataclasses.Field, info: FieldInfo, kind: Kind, path: str) -> dict:
    """Schema node of one key (a section node recurses into :func:`section_node`)."""
    if kind.name == "section" and not info.opaque:
        node = section_node(kind.cls, path)
    else:
        node = {"type": _type_name(kind, info)}
        value = schema_default(f, info, kind)
        # TAO leaves an empty mapping out of the key's own default (it stays in the section default).
        if value is not None and not (isinstance(value, dict) and not value):
            node["default"] = value
        if info.valid_min is not None:
            node["minimum"] = info.valid_min
        if info.valid_max is not None:
            node["maximum"] = info.valid_max
        if info.valid_options is not None:
            node["enum"] = list(info.valid_options)
        if info.option_weights is not None:
            node["option_weights"] = list(info.option_weights)
        if info.math_cond:
            node["math_cond"] = info.math_cond
        if info.depends_on:
            node["depends_on"] = info.depends_on
        if info.parent_param:
            node["parent_param"] = "TRUE"
        if info.popular:
            node["popular"] = True
        if info.pattern:
            node["pattern"] = info.pattern
        if info.automl_enabled is not None:
            node["automl_enabled"] = info.automl_enabled
    if kind.name == "section" and not info.opaque:
        node["automl_enabled"] = bool(info.automl_enabled)
    node["description"] = info.description
    if info.title:
        node["title"] = info.title
    return node


def section_node(cls: type, path: str) -> dict:
    """Schema node of a section: its keys, its default and its per-section annotation lists."""
    properties, enabled, disabled, popular, required = {}, [], [], [], []
    kinds = field_kinds(cls)
    for f in dataclasses.fields(cls):
        info, kind = field_info(f), kinds[f.name]
        child = f"{path}.{f.name}" if path else f.name
        properties[f.name] = field_node(f, info, kind, child)
        state = properties[f.name].get("automl_enabled")
        if state is True:
            enabled.append(child)
        elif state is False:
            disabled.append(child)
        if info.popular:
            popular.append(f.name)
        if info.required:
            required.append(f.name)
    node: dict[str, Any] = {"type": "collection", "properties": properties, "default": section_default(cls)}
    for key, values in (("automl_default_parameters", enabled), ("automl_disabled_parameters", disabled),
                        ("popular", popular), ("required", required)):
        if values:
            node[key] = sorted(values)
    return node


def _walk_automl(node: dict, enabled: set, disabled: set, path: str = "") -> None:
    for name, child in node.get("properties", {}).items():
        if not isinstance(child, dict):
            continue
        full = f"{path}.{name}" if path else name
        if child.get("automl_enabled") is True:
            enabled.add(full)
        elif child.get("automl_enabled") is False:
            disabled.add(full)
        _walk_automl(child, enabled, disabled, full)


def _popular_defaults(cls: type) -> dict:
    """Nested ``{key: default}`` of every popular leaf (sections kept when they hold one)."""
    out = {}
    kinds = field_kinds(cls)
    for f in dataclasses.fields(cls):
        info, kind = field_info(f), kinds[f.name]
        if kind.name == "section" and not info.opaque:
            inner = _popular_defaults(kind.cls)
            if inner:
                out[f.name] = inner
        elif info.popular:
            out[f.name] = schema_default(f, info, kind)
    return out


def global_annotations() -> dict:
    """AutoML lists and popular defaults over the whole spec (the same in every action's schema)."""
    full = section_node(ExperimentConfig, "")
    enabled: set[str] = set()
    disabled: set[str] = set()
    _walk_automl(full, enabled, disabled)
    return {"automl_default_parameters": sorted(enabled), "automl_disabled_parameters": sorted(disabled),
            "popular": _popular_defaults(ExperimentConfig),
            "section_disabled": full.get("automl_disabled_parameters", []), "required": full.get("required", [])}


def build_schema(action: str) -> dict:
    """The JSON schema of one action (TAO's layout; see the module docstring)."""
    sections = action_sections(action)
    full = section_node(ExperimentConfig, "")
    annotations = global_annotations()
    # TAO writes the root's own list of disabled sections inside "properties"; kept for drop-in tools.
    properties: dict[str, Any] = {"automl_disabled_parameters": annotations["section_disabled"]}
    properties.update({name: full["properties"][name] for name in sections})
    return {
        "automl_default_parameters": annotations["automl_default_parameters"],
        "automl_disabled_parameters": annotations["automl_disabled_parameters"],
        "default": {name: full["default"][name] for name in sections},
        "popular": annotations["popular"],
        "properties": properties,
        "required": [name for name in annotations["required"] if name in sections],
        "type": "object",
        "x_tao_schema": {"action": action, "core_module": NETWORK_ARCH, "model": MODEL_ID,
                         "network_arch": NETWORK_ARCH, "schema_action": action,
                         "schema_version": SCHEMA_VERSION, "source": "mask_grounding_dino config dataclasses"},
    }


def build_manifest() -> dict:
    """``schemas/manifest.json``: every action with its AutoML lists, popular keys and file names."""
    annotations = global_annotations()
    actions = {}
    for action in ACTIONS:
        actions[action] = {
            "automl_default_parameters": annotations["automl_default_parameters"],
            "automl_disabled_parameters": annotations["automl_disabled_parameters"],
            "core_module": NETWORK_ARCH,
            "path": f"schemas/{action}.schema.json",
            "popular": annotations["popular"],
            "schema_action": action,
            "spec_template": f"references/spec_template_{action}.yaml",
        }
    return {"actions": actions, "automl_enabled": True, "failures": {}, "model": MODEL_ID,
            "network_arch": NETWORK_ARCH, "schema_version": SCHEMA_VERSION}


def to_json(data: dict) -> str:
    """JSON text as TAO writes it: sorted keys, 2-space indent, ``Infinity`` for unbounded limits."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def spec_template(action: str) -> str:
    """``references/spec_template_<action>.yaml``: the schema's top-level default as YAML."""
    return dump_yaml(build_schema(action)["default"])
