"""A job's spec: the request as given (file contents + dotted overrides), checked at creation,
and the spec object the job layer completes at launch."""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

from ..config import ExperimentConfig, get_value, load_spec
from ..data import fileio
from ..config.loader import read_spec_file
from ..config.overrides import deep_merge, parse_override


@dataclasses.dataclass(frozen=True)
class SpecRequest:
    """``data``: the spec file's contents merged with a ``specs`` dict (nested, TAO's name);
    ``overrides``: dotted keys applied last (``{"train.num_epochs": 3}``)."""

    spec_file: str | None
    data: dict
    overrides: dict


def _overrides_dict(overrides: dict | list[str] | tuple | None) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return {str(k): v for k, v in overrides.items()}
    pairs = [parse_override(text) for text in ([overrides] if isinstance(overrides, str) else overrides)]
    return dict(pairs)


def _absolute(path: str) -> str:
    """A local spec path made absolute (jobs run from another folder); a URL as given."""
    return path if fileio.is_url(path) else os.path.abspath(fileio.local_path(path))


def read_request(spec_file: str | os.PathLike | None, specs: dict | None,
                 overrides: dict | list[str] | None) -> tuple[SpecRequest, ExperimentConfig]:
    """Read and validate a job's spec; raises ``SpecError`` (one line per problem, naming the file
    and line or the override) before anything is stored."""
    path = _absolute(os.fspath(spec_file)) if spec_file else None
    data = read_spec_file(path)[0] if path else {}
    if specs:
        deep_merge(data, copy.deepcopy(specs))
    wanted = _overrides_dict(overrides)
    # Validate what was given as given: messages then quote each override as written and, with a
    # file and no dict, name the file's line.
    given = list(overrides) if isinstance(overrides, (list, tuple)) else wanted
    cfg = load_spec(path, given) if path and not specs else load_spec(overrides=given, base=data)
    return SpecRequest(path, data, wanted), cfg


def request_config(data: dict, overrides: dict) -> ExperimentConfig:
    """The spec exactly as requested (validated at creation, so this does not fail for it)."""
    return load_spec(overrides=overrides, base=copy.deepcopy(data))


def set_value(cfg: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = get_value(cfg, ".".join(parts[:-1])) if len(parts) > 1 else cfg
    setattr(node, parts[-1], value)


def default_value(dotted: str) -> Any:
    return get_value(ExperimentConfig(), dotted)
