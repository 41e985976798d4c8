"""``key.sub=value`` overrides: parsing the text form and applying dotted keys to a spec dict.

Forms accepted (command line and Python API alike):

- ``train.num_epochs=3`` (values are YAML scalars: ``3`` int, ``1e-4`` text coerced later, ``true``);
- list items ``dataset.train_data_sources.0.image_dir=...`` or ``...train_data_sources[0].image_dir=...``
  (index == length appends a new item);
- whole lists or sections in YAML flow syntax: ``dataset.augmentation.scales=[320,352]``,
  ``dataset.val_data_sources={image_dir: a, json_file: b}``;
- TAO skill shorthands: ``num_epochs=3`` means ``train.num_epochs=3``;
- hydra's ``+key=value`` / ``++key=value`` mean ``key=value``.

A mapping value is merged into the section already there (so ``{"x.data_type": "OD", "x": {...}}``
keeps ``data_type``, as TAO's SKILL.md examples expect); a list value replaces the list.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import SpecError
from .problems import Path

#: TAO skill_info ``spec_shorthand_keys`` (train skill and deploy skill): short name -> full key.
SHORTHAND_KEYS = {
    "num_epochs": "train.num_epochs",
    "batch_size": "dataset.batch_size",
    "learning_rate": "train.optim.lr",
    "num_queries": "model.num_queries",
    "num_select": "model.num_select",
    "max_text_len": "model.max_text_len",
    "num_region_queries": "model.num_region_queries",
    "has_mask": "model.has_mask",
    "resume_checkpoint": "train.resume_training_checkpoint_path",
    "trt_data_type": "gen_trt_engine.tensorrt.data_type",
    "trt_engine": "gen_trt_engine.trt_engine",
    "backbone": "model.backbone",
    "num_feature_levels": "model.num_feature_levels",
    "enc_layers": "model.enc_layers",
    "dec_layers": "model.dec_layers",
    "input_width": "inference.input_width",
    "input_height": "inference.input_height",
}

_INDEX = re.compile(r"\[(\d+)\]")
_KEY = re.compile(r"^[A-Za-z_][\w\-]*$|^\d+$")


def split_key(key: str) -> Path:
    """``"a.b[0].c"`` or ``"a.b.0.c"`` -> ``("a", "b", "0", "c")`` (indices stay text until applied)."""
    parts = tuple(_INDEX.sub(r".\1", key.strip()).split("."))
    if not key.strip() or any(not _KEY.match(part) for part in parts):
        raise SpecError(f"override key {key!r}: expected dotted names such as train.optim.lr or "
                        "dataset.train_data_sources.0.image_dir")
    return parts


def expand_shorthand(path: Path, top_level: set[str]) -> Path:
    """Map a TAO shorthand (``num_epochs``) to its full key unless it names a real top-level key."""
    if len(path) == 1 and path[0] not in top_level and path[0] in SHORTHAND_KEYS:
        return tuple(SHORTHAND_KEYS[path[0]].split("."))
    return path


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.hidden_dim=128"`` -> ``("model.hidden_dim", 128)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip().lstrip("+")  # hydra's "+key=v" / "++key=v" (used with TAO) mean the same here
    if not sep or not key:
        raise SpecError(f"override {text!r}: expected key=value, e.g. train.num_epochs=3")
    raw = raw.strip()
    if raw == "":
        return key, ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"override {text!r}: cannot read the value as YAML ({reason}); quote text values "
                        "and write lists as [a, b]") from None
    if isinstance(value, bool) and raw.lower() not in ("true", "false"):
        value = raw  # YAML 1.1 reads yes/no/on/off as booleans; keep the text, the key's type decides
    return key, value


def deep_merge(target: dict, update: dict) -> dict:
    """Merge ``update`` into ``target`` in place: mappings merge key by key, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = _copy(value)
    return target


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def apply_override(tree: dict, path: Path, value: Any, label: str) -> Path:
    """Set ``value`` at ``path`` in the nested spec dict ``tree``; returns the resolved path.

    Digit parts index lists. Raises :class:`SpecError` naming ``label`` (the override as
    written) when the path crosses a value that is not a section or a list.
    """
    node: Any = tree
    resolved: list[str | int] = []
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit():
                raise SpecError(f"{label}: {'.'.join(map(str, resolved))} is a list; use an item index "
                                f"such as {'.'.join(map(str, resolved))}.0")
            index = int(part)
            if index > len(node):
                raise SpecError(f"{label}: index {index} is out of range ({len(node)} items; "
                                f"{len(node)} appends one)")
            if index == len(node):
                node.append({} if not last else None)
            part = index
        elif not isinstance(node, dict):
            raise SpecError(f"{label}: {'.'.join(map(str, resolved))} holds a value, not a section")
        resolved.append(part)
        if last:
            if isinstance(value, dict) and isinstance(node[part] if isinstance(node, list) else node.get(part),
                                                      dict):
                deep_merge(node[part], value)
            else:
                node[part] = _copy(value)
        else:
            child = node[part] if isinstance(node, list) else node.get(part)
            if child is None:  # an unset optional section or list: create it
                child = [] if path[depth + 1].isdigit() else {}
                node[part] = child
            node = child
    return tuple(resolved)
