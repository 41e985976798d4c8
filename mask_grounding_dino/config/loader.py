"""Loading a spec: YAML file + overrides -> validated :class:`ExperimentConfig`; and dumping one."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from ..errors import SpecError
from .build import SpecBuilder
from .experiment import ExperimentConfig
from .hints import field_kinds
from .origins import OVERRIDE, Origin, SpecOrigins
from .overrides import SHORTHAND_KEYS, apply_override, deep_merge, expand_shorthand, parse_override, split_key
from .problems import Path, Problems, format_path
from .validate import validate_spec, warn_keys_without_effect


def load_spec(path: str | os.PathLike | None = None, overrides: list[str] | dict[str, Any] | None = None,
              base: dict | None = None) -> ExperimentConfig:
    """Read, merge, type and validate a spec.

    Layers, later ones winning: TAO's defaults, ``base`` (a nested dict), the YAML
    file at ``path``, then ``overrides`` (``["train.num_epochs=3", ...]`` or
    ``{"train.num_epochs": 3, "dataset.val_data_sources": {...}}``). Raises
    :class:`SpecError` listing every problem, one line each, with file and line.
    """
    return load_spec_with_origins(path, overrides, base)[0]


def load_spec_with_origins(path: str | os.PathLike | None = None,
                           overrides: list[str] | dict[str, Any] | None = None,
                           base: dict | None = None) -> tuple[ExperimentConfig, SpecOrigins]:
    """:func:`load_spec`, also returning where each key came from (the file or an override)."""
    problems = Problems()
    tree = spec_to_dict(ExperimentConfig())
    if base:
        deep_merge(tree, base)
    if path is not None:
        data, lines = read_spec_file(path, problems)
        deep_merge(tree, data)
        problems.origins.add_file_lines(lines)
    for key, value, label in _override_items(overrides, problems):
        try:
            resolved = apply_override(tree, expand_shorthand(split_key(key), set(field_kinds(ExperimentConfig))),
                                      value, label)
        except SpecError as exc:
            problems.lines.extend(exc.problems)
            continue
        problems.origins.set(resolved, Origin(OVERRIDE, label))
    cfg = SpecBuilder(ExperimentConfig, problems, SHORTHAND_KEYS).build(tree)
    validate_spec(cfg, problems)  # values that failed to build kept their (valid) defaults
    problems.raise_if_any()
    warn_keys_without_effect(cfg, problems)
    return cfg, problems.origins


def _override_items(overrides: list[str] | dict[str, Any] | None, problems: Problems):
    if not overrides:
        return
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            yield str(key), value, f"override {key!r}"
        return
    if isinstance(overrides, str):
        overrides = [overrides]
    for text in _rejoin_split_values(list(overrides), problems):
        try:
            key, value = parse_override(text)
        except SpecError as exc:
            problems.lines.extend(exc.problems)
            continue
        yield key, value, f"override {text!r}"


def _rejoin_split_values(texts: list[str], problems: Problems) -> list[str]:
    """The overrides, minus those followed by words without ``=``: the shell split such a
    value at its spaces (``captions=red circle . blue square`` unquoted), so one problem
    line shows the quoted form instead of one "expected key=value" per word."""
    kept: list[str] = []
    i = 0
    while i < len(texts):
        text, i = texts[i], i + 1
        words = []
        while "=" in text and i < len(texts) and "=" not in texts[i]:
            words.append(texts[i])
            i += 1
        if not words:
            kept.append(text)
            continue
        key, _, value = text.partition("=")
        whole = " ".join([value, *words])
        problems.add_plain(f"override {text!r} is followed by {' '.join(words)!r}, which is not key=value: the "
                           f"shell splits a value at its spaces; put quotes around it: {key}='{whole}'")
    return kept


def _read_text(name: str) -> str:
    """A local spec file, or one at an fsspec URL (``s3://bucket/spec.yaml``) through the file layer."""
    from ..data import fileio

    if not fileio.is_url(name):
        with open(fileio.local_path(name), encoding="utf-8") as handle:
            return handle.read()
    if not fileio.isfile(name):
        raise FileNotFoundError(name)
    with fileio.open_text(name) as handle:
        return handle.read()


def read_spec_file(path: str | os.PathLike, problems: Problems | None = None) -> tuple[dict, dict[Path, str]]:
    """Parse a YAML spec; returns the data and, for each key path, ``"file:line"``.

    Missing or unreadable files and YAML syntax errors raise :class:`SpecError` at once
    (nothing else can be checked); duplicate keys are recorded in ``problems``.
    """
    name = os.fspath(path)
    try:
        text = _read_text(name)
    except FileNotFoundError:
        raise SpecError(f"{name}: spec file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{name}: is a folder, expected a YAML spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{name}: cannot read the spec file ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: YAML syntax error: {reason}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise SpecError(f"{name}: a spec must be a mapping of sections (model:, dataset:, train: ...), "
                        f"got a {type(data).__name__}")
    origins: dict[Path, str] = {}
    _record_lines(node, (), name, origins, problems)
    return data, origins


def _record_lines(node: yaml.Node, path: Path, name: str, origins: dict[Path, str],
                  problems: Problems | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen and problems is not None:
                problems.add_plain(f"{name}:{line}: {format_path(path + (key,))}: duplicate key (also on line "
                                   f"{seen[key]}); keep only one")
            seen[key] = line
            origins[path + (key,)] = f"{name}:{line}"
            _record_lines(value_node, path + (key,), name, origins, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            origins[path + (index,)] = f"{name}:{item.start_mark.line + 1}"
            _record_lines(item, path + (index,), name, origins, problems)


def spec_to_dict(cfg: Any, drop_none: bool = False) -> Any:
    """A spec dataclass tree as plain dicts and lists, in field order (None kept unless ``drop_none``)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        out = {}
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if value is None and drop_none:
                continue
            out[f.name] = spec_to_dict(value, drop_none)
        return out
    if isinstance(cfg, (list, tuple)):
        return [spec_to_dict(item, drop_none) for item in cfg]
    if isinstance(cfg, dict):
        return {key: spec_to_dict(value, drop_none) for key, value in cfg.items()}
    return cfg


class _PlainDumper(yaml.SafeDumper):
    """Safe dumper that writes repeated objects out in full (no ``&id001`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """YAML text in key order, block style (the layout of TAO's templates)."""
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=100)


def dump_spec(cfg: ExperimentConfig) -> str:
    """The resolved spec as YAML; :func:`load_spec` reads it back to an equal config."""
    return dump_yaml(spec_to_dict(cfg))


def save_spec(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write the resolved spec atomically (e.g. ``results_dir/experiment.yaml`` for a record of the run)."""
    from ..utils.atomic import atomic_write_text

    atomic_write_text(path, dump_spec(cfg))
