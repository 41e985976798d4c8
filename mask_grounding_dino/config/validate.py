"""Checks on a typed spec: bounds, allowed values, patterns and conditions between keys."""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import os
import re
from typing import Any

from .fields import FieldInfo, field_info
from .problems import Path, Problems

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "!=": operator.ne,
            "==": operator.eq}
_COND = re.compile(r"^\s*(>=|<=|!=|==|>|<)\s*(\S+)\s*$")
log = logging.getLogger(__name__)


def validate_spec(cfg: Any, problems: Problems) -> None:
    """Record every violated annotation of ``cfg`` (a spec dataclass tree) in ``problems``."""
    _walk(cfg, cfg, (), problems)
    for rule in CROSS_CHECKS:
        rule(cfg, problems)


def _walk(root: Any, section: Any, path: Path, problems: Problems) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        key = path + (f.name,)
        if dataclasses.is_dataclass(value):
            _walk(root, value, key, problems)
        elif isinstance(value, list) and any(dataclasses.is_dataclass(item) for item in value):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _walk(root, item, key + (i,), problems)
        else:
            _check_value(root, field_info(f), value, key, problems)


def _format_bound(bound: float | None, unbounded: str = "inf") -> str:
    if bound is None:
        return unbounded
    return "inf" if bound == math.inf else f"{bound:g}"


def _check_value(root: Any, info: FieldInfo, value: Any, path: Path, problems: Problems) -> None:
    if value is None:
        return
    if info.valid_options is not None and not (info.allow_empty and value == ""):
        if value not in info.valid_options:
            allowed = ", ".join(str(option) for option in info.valid_options)
            if info.allow_empty:
                allowed += " (or empty)"
            problems.add(path, f"{value!r} is not allowed; choose one of: {allowed}")
            return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = info.valid_min, info.valid_max
        too_low = low is not None and value < low
        if too_low or (high is not None and value > high):
            span = f"{_format_bound(low, '-inf')}..{_format_bound(high)}"
            side, limit = ("below the minimum", low) if too_low else ("above the maximum", high)
            problems.add(path, f"{value} is {side} {_format_bound(limit)} (allowed range {span})")
            return
    if info.pattern and isinstance(value, str) and not re.fullmatch(info.pattern, value):
        problems.add(path, f"{value!r} does not match the pattern {info.pattern}")
        return
    if info.math_cond:
        _check_condition(root, info, value, path, problems)
    if info.check is not None:
        message = info.check(value)
        if message:
            problems.add(path, message)


def _check_condition(root: Any, info: FieldInfo, value: Any, path: Path, problems: Problems) -> None:
    match = _COND.match(info.math_cond)
    if not match or not isinstance(value, (int, float)):
        return
    op, rhs = match.groups()
    if rhs == "depends_on":
        other = get_value(root, info.depends_on)
        if other is None:
            return
        label = f"{info.depends_on} ({other})"
    else:
        other, label = float(rhs), rhs
    if not _COMPARE[op](value, other):
        problems.add(path, f"{value} must be {op} {label}")


def get_value(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key path (``train.optim.lr``) of a spec tree."""
    value = cfg
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else getattr(value, part)
    return value


# -- conditions that involve several keys, beyond TAO's annotations ---------------------------------
def _tensorrt_profile(cfg: Any, problems: Problems) -> None:
    trt = cfg.gen_trt_engine.tensorrt
    if not trt.min_batch_size <= trt.opt_batch_size <= trt.max_batch_size:
        problems.add(("gen_trt_engine", "tensorrt"),
                     f"batch profile must satisfy min_batch_size <= opt_batch_size <= max_batch_size, got "
                     f"{trt.min_batch_size} / {trt.opt_batch_size} / {trt.max_batch_size}")


def _input_size_pairs(cfg: Any, problems: Problems) -> None:
    for section in ("evaluate", "inference"):
        sub = getattr(cfg, section)
        if (sub.input_width is None) != (sub.input_height is None):
            problems.add((section,), "set both input_width and input_height, or neither "
                                     f"(got {sub.input_width} x {sub.input_height})")


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and "://" in value and not value.startswith("file://")


def _results_dirs(section: Any, path: Path = ()):
    """``(path, value)`` of every ``results_dir`` key (top level and each action's)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            yield from _results_dirs(value, path + (f.name,))
        elif f.name == "results_dir":
            yield path + (f.name,), value


#: Keys naming a local location, and why a URL cannot be one (what to do instead).
_LOCAL_ONLY = {
    ("export", "onnx_file"): "the ONNX file is written locally; give a local path, then copy it (e.g. "
                             "aws s3 cp <file> {url})",
    ("gen_trt_engine", "onnx_file"): "trtexec reads a local ONNX file; copy it first (e.g. aws s3 cp {url} "
                                     "model.onnx)",
    ("gen_trt_engine", "trt_engine"): "the engine is built into a local file; give a local path, then copy it",
    ("model", "text_encoder_type"): "the text encoder is loaded from a local folder or a Hugging Face hub id; "
                                    "copy the folder first (e.g. aws s3 sync {url} <folder>)",
}


def _local_locations(cfg: Any, problems: Problems) -> None:
    """Results and other written or folder-loaded locations must be local: the data sources and
    checkpoints a spec reads may be URLs (``s3://``), what a run writes goes to a local folder."""
    for path, value in _results_dirs(cfg):
        if _is_url(value):
            problems.add(path, f"{value!r} is a URL; results are written to a local folder only: give a local "
                               f"path, then copy the folder (e.g. aws s3 sync <folder> {value})")
    for path, why in _LOCAL_ONLY.items():
        value = get_value(cfg, ".".join(path))
        if _is_url(value):
            problems.add(path, f"{value!r} is a URL; " + why.format(url=value))


CROSS_CHECKS = [_tensorrt_profile, _input_size_pairs, _local_locations]


# -- keys accepted for TAO compatibility that change nothing -----------------------------------------
#: Each key, and why it has no effect. A spec that gives another value than the default gets one
#: warning line per key (:func:`warn_keys_without_effect`); config/deviations.yaml lists them too.
NO_EFFECT: dict[str, str] = {
    "model.fix_refpoints_hw": "reference boxes come from the encoder's proposals with a learned width and height "
                              "(a DINO key that TAO's Grounding DINO models do not read either)",
    "model.clip_max_norm": "TAO does not read it either; gradient clipping is train.clip_grad_norm",
    "train.optim.monitor_name": "the MultiStep and StepLR schedules watch no metric; kept checkpoints are ranked "
                                "by train.checkpointer.monitor (TAO hands it to Lightning, which reads it only "
                                "for a ReduceLROnPlateau schedule)",
    "train.optim.momentum": "the optimiser is AdamW (TAO's only one), which has no momentum parameter",
    "dataset.eval_class_ids": "COCO evaluation scores every category (TAO's Mask Grounding DINO does not read it "
                              "either)",
    "encryption_key": "model files are plain PyTorch checkpoints, read and written unencrypted",
}
#: Keys whose value is never repeated in a message.
_SECRET = ("encryption_key",)
#: Values as quiet as the default: ``tlt_encode`` is the key every TAO spec template and TAO's job
#: service write, so warning about it would flag every spec that comes from TAO.
_AS_DEFAULT: dict[str, tuple] = {"encryption_key": ("tlt_encode",)}
_WARNED: set[tuple[str, str]] = set()     # (key, value) already reported by this process


def keys_without_effect(cfg: Any, problems: Problems | None = None) -> list[tuple[str, str]]:
    """``(key, line)`` for each :data:`NO_EFFECT` key whose value in ``cfg`` is not the default;
    the line is prefixed with where the value was written when ``problems`` knows it."""
    defaults = type(cfg)()
    found = []
    for key, why in NO_EFFECT.items():
        value = get_value(cfg, key)
        if value != get_value(defaults, key) and value not in _AS_DEFAULT.get(key, ()):
            origin = problems.origin(tuple(key.split("."))) if problems is not None else None
            shown = "setting it" if key in _SECRET else repr(value)
            found.append((key, f"{origin + ': ' if origin else ''}{key}: {shown} has no effect: {why}"))
    return found


def warn_keys_without_effect(cfg: Any, problems: Problems | None = None) -> None:
    """Log :func:`keys_without_effect` as warnings, each key and value once per process, and only
    in the first process of a machine (launched training processes load the same spec again)."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    for key, line in keys_without_effect(cfg, problems):
        seen = (key, repr(get_value(cfg, key)))
        if seen not in _WARNED:
            _WARNED.add(seen)
            log.warning(line)


def region_head_without_loss(model: Any) -> bool:
    """True when a spec's ``model`` section builds the ReLA region head but trains it with no loss
    (``num_region_queries`` > 0, masks on, no ``rela`` in ``loss_types``): TAO's train template does."""
    return int(model.num_region_queries) > 0 and bool(model.has_mask) and "rela" not in model.loss_types


def is_unset(value: Any) -> bool:
    """True for a value that names nothing yet: None, "", TAO's "???" marker, or an empty list."""
    return value is None or value == "" or value == "???" or value == []


def require(cfg: Any, *paths: str, action: str | None = None) -> None:
    """Raise :class:`SpecError` listing each dotted key in ``paths`` that is unset in ``cfg``.

    Actions call it for the keys they cannot run without, e.g.
    ``require(cfg, "evaluate.checkpoint", "dataset.test_data_sources.json_file", action="evaluate")``.
    """
    from ..errors import SpecError

    missing = [path for path in paths if is_unset(get_value(cfg, path))]
    if missing:
        needed = f" for {action}" if action else ""
        raise SpecError([f"{path}: required{needed}; set it in the spec or add {path}=..." for path in missing])

__all__ = ["validate_spec", "get_value", "CROSS_CHECKS", "is_unset", "require", "NO_EFFECT",
           "keys_without_effect", "warn_keys_without_effect", "region_head_without_loss"]
