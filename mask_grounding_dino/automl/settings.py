"""AutoML settings, with TAO's key names and defaults.

Read from a YAML mapping (``--automl-spec automl.yaml``) and/or ``key=value`` pairs (later
wins). An unknown key is refused with the nearest valid one. Settings beyond TAO's (where the
study lives, how a trial's metric is summarised) keep the same style of names.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import yaml

from .errors import AutoMLError

#: TAO's algorithms that run here, and the ones it has that do not (with the reason).
ALGORITHMS = ("bayesian", "hyperband", "asha", "bohb", "pbt")
NOT_AVAILABLE = {
    "bfbo": "Optuna's GP sampler offers expected improvement only, not the UCB acquisition bfbo needs; use bayesian",
    "dehb": "no differential-evolution Hyperband in Optuna; use bohb",
    "hyperband_es": "curve-fit early stopping is not implemented; use hyperband or asha",
    "llm": "LLM-driven search calls a hosted endpoint; not part of this package",
    "hybrid": "LLM-driven search calls a hosted endpoint; not part of this package",
    "autoresearch": "LLM-driven search calls a hosted endpoint; not part of this package",
}
DIRECTIONS = ("maximize", "minimize")
SUMMARIES = ("best", "last")


@dataclasses.dataclass
class AutoMLSettings:
    """TAO's AutoML settings (defaults as TAO's), plus where the study is kept.

    ``metric``: a validation key of ``val_metrics.jsonl`` (TAO's monitor by default);
    ``direction``: maximize / minimize (default: from the metric, see metric.py);
    ``metric_summary``: ``best`` (the trial's best validated epoch counts) or ``last`` (TAO);
    ``automl_hyperparameters``: dotted keys to search instead of the schema's defaults;
    ``custom_param_ranges``: ``{key: {valid_min, valid_max, valid_options, option_weights,
    math_cond, depends_on}}`` over the schema's;
    ``storage``: an SQLAlchemy URL shared by every worker (default: SQLite in the AutoML folder);
    ``study_name``: the study (default ``automl``); ``seed``: the sampler's seed.
    """

    automl_algorithm: str = "bayesian"
    automl_max_recommendations: int = 20
    automl_max_epochs: int = 27
    automl_reduction_factor: int = 3
    epoch_multiplier: int = 1
    automl_max_concurrent: int = 4
    automl_population_size: int = 10
    automl_max_generations: int = 20
    automl_eval_interval: int = 10
    automl_perturbation_factor: float = 1.2
    metric: str = "[bbox] val_mAP@50"
    direction: str | None = None
    metric_summary: str = "best"
    automl_hyperparameters: list[str] | None = None
    custom_param_ranges: dict[str, dict] | None = None
    storage: str | None = None
    study_name: str = "automl"
    seed: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(AutoMLSettings)}
_INTS = ("automl_max_recommendations", "automl_max_epochs", "automl_reduction_factor", "epoch_multiplier",
         "automl_max_concurrent", "automl_population_size", "automl_max_generations", "automl_eval_interval")
#: Each integer setting's least value.
_MINIMUM = {"automl_reduction_factor": 2, "automl_population_size": 2}


def is_setting(key: str) -> bool:
    """True for a key that names (or nearly names) an AutoML setting rather than a spec key."""
    return "." not in key


def _unknown(key: str, where: str) -> AutoMLError:
    close = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else f"; settings: {', '.join(FIELDS)}"
    return AutoMLError(f"{where}: unknown AutoML setting {key!r}{hint}")


_OPTIONAL = ("direction", "automl_hyperparameters", "custom_param_ranges", "storage", "seed")


def _convert(key: str, value: Any, where: str) -> Any:
    if value is None and key in _OPTIONAL:
        return None
    if key in _INTS:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise AutoMLError(f"{where}: {key} must be a whole number, got {value!r}") from None
        if isinstance(value, float) and value != number or isinstance(value, bool):
            raise AutoMLError(f"{where}: {key} must be a whole number, got {value!r}")
        least = _MINIMUM.get(key, 1)
        if number < least:
            raise AutoMLError(f"{where}: {key} must be at least {least}, got {number}")
        return number
    if key == "automl_perturbation_factor":
        try:
            factor = float(value)
        except (TypeError, ValueError):
            raise AutoMLError(f"{where}: {key} must be a number above 1, got {value!r}") from None
        if not factor > 1.0:
            raise AutoMLError(f"{where}: {key} must be above 1 (values are multiplied or divided by it), got {value}")
        return factor
    if key == "seed":
        return None if value in (None, "", "null", "None") else int(value)
    if key == "automl_hyperparameters":
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AutoMLError(f"{where}: {key} must be a list of dotted spec keys, got {value!r}")
        return value
    if key == "custom_param_ranges":
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise AutoMLError(f"{where}: {key} must map dotted spec keys to {{valid_min: .., valid_max: ..}}, "
                              f"got {value!r}")
        return value
    return None if value is None else str(value)


def _check(settings: AutoMLSettings, where: str) -> None:
    algorithm = settings.automl_algorithm = settings.automl_algorithm.lower()
    if algorithm in NOT_AVAILABLE:
        raise AutoMLError(f"{where}: automl_algorithm {algorithm!r} is not available: {NOT_AVAILABLE[algorithm]}")
    if algorithm not in ALGORITHMS:
        close = difflib.get_close_matches(algorithm, ALGORITHMS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise AutoMLError(f"{where}: unknown automl_algorithm {algorithm!r}; {hint}allowed: {', '.join(ALGORITHMS)}")
    if settings.direction is not None:
        settings.direction = settings.direction.lower()
        if settings.direction not in DIRECTIONS:
            raise AutoMLError(f"{where}: direction {settings.direction!r}: allowed {', '.join(DIRECTIONS)}")
    if settings.metric_summary not in SUMMARIES:
        raise AutoMLError(f"{where}: metric_summary {settings.metric_summary!r}: allowed {', '.join(SUMMARIES)}")
    if not settings.study_name:
        raise AutoMLError(f"{where}: study_name must not be empty")


def load_settings(path: str | None = None, pairs: list[str] | dict[str, Any] | None = None) -> AutoMLSettings:
    """Settings from a YAML file (a mapping; TAO's ``automl_settings`` nesting is accepted) and
    ``key=value`` pairs; raises :class:`AutoMLError` naming the file or pair."""
    values: dict[str, tuple[Any, str]] = {}
    if path:
        from ..data import fileio

        try:
            with fileio.open_text(path) as handle:
                data = yaml.safe_load(handle.read()) or {}
        except yaml.YAMLError as exc:
            raise AutoMLError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict) and isinstance(data.get("automl_settings"), dict):
            data = data["automl_settings"]
        if not isinstance(data, dict):
            raise AutoMLError(f"{path}: expected a mapping of AutoML settings, got {type(data).__name__}")
        values.update({str(k): (v, path) for k, v in data.items()})
    items = pairs.items() if isinstance(pairs, dict) else [_split(p) for p in (pairs or [])]
    for key, value in items:
        values[key] = (value, f"{key}={value}" if isinstance(pairs, dict) else f"{key}={value}")
    settings = AutoMLSettings()
    for key, (value, where) in values.items():
        if key not in FIELDS:
            raise _unknown(key, where)
        setattr(settings, key, _convert(key, value, where))
    _check(settings, path or "AutoML settings")
    return settings


def _split(pair: str) -> tuple[str, Any]:
    if "=" not in pair:
        raise AutoMLError(f"{pair!r}: expected key=value")
    key, text = pair.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value
