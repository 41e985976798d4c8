"""The search space: the train schema's AutoML annotations as Optuna distributions.

Source: every schema leaf listed in ``automl_default_parameters`` (or the keys of the
``automl_hyperparameters`` setting), with ``minimum``/``maximum`` ("inf" allowed), ``enum`` +
``option_weights``, ``math_cond``, ``depends_on`` and ``parent_param``; ``custom_param_ranges``
overrides any of those per key. The rules, where TAO's annotations leave a choice:

* an infinite upper bound becomes 10 x the default for a float and 2 x the default for an
  integer (never below the lower bound + 1); an infinite lower bound becomes the default / 10;
* learning rates, the projection factor and weight decay are searched log-uniformly over
  [default / 10, default x 10] within the schema's bounds (a zero lower bound cannot be
  log-scaled; a rate's useful range spans decades, not equal steps);
* ``math_cond "^ k"``: the powers of k in range (a categorical); ``"/ k"``: multiples of k;
  ``"> depends_on"`` (``>=``, ``<``, ``<=``): the sampled value is clamped against the parent's
  value (the parent is sampled first, or is the spec's value when it is not searched);
* ``model.num_select`` never exceeds ``model.num_queries`` (the model cannot select more
  queries than it has);
* a parameter with no effect under the spec is not searched: ``train.optim.lr_step_size``
  unless ``lr_scheduler`` is StepLR, ``train.optim.momentum`` (AdamW has none), and
  ``lr_backbone`` when the backbone is frozen.

``option_weights`` are honoured by sampling a uniform number in [0, 1) and mapping it
through the weights' cumulative sums (Optuna's categorical distribution is uniform).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any

from .errors import AutoMLError

LOG_SCALE = ("train.optim.lr", "train.optim.lr_backbone", "train.optim.lr_linear_proj_mult",
             "train.optim.weight_decay")
RELATIONS = (">=", "<=", ">", "<")
#: A float relation's margin (TAO's epsilon).
EPSILON = 1e-6
#: Least values beyond the schema's: a StepLR period of 0 epochs divides by zero.
FLOORS = {"train.optim.lr_step_size": 1}
_KINDS = {"int": "int", "integer": "int", "float": "float", "number": "float", "bool": "bool",
          "boolean": "bool", "categorical": "categorical", "ordered": "categorical", "ordered_int": "categorical"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched spec key. ``kind``: float | int | categorical | weighted (a float u in [0,1)
    mapped to ``choices`` by ``weights``). ``relation`` + ``depends_on``: clamp against that key."""

    name: str
    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: tuple | None = None
    weights: tuple | None = None
    depends_on: str | None = None
    relation: str | None = None
    note: str = ""

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), step=self.step or 1)
        if self.kind == "weighted":
            return FloatDistribution(0.0, 1.0)
        return CategoricalDistribution(self.choices)

    def describe(self) -> str:
        if self.kind in ("float", "int"):
            scale = " log" if self.log else ""
            step = f" step {self.step}" if self.step else ""
            text = f"{self.kind}{scale} [{_num(self.low)}, {_num(self.high)}]{step}"
        elif self.kind == "weighted":
            text = f"one of {list(self.choices)} weighted {list(self.weights)}"
        else:
            text = f"one of {list(self.choices)}"
        if self.relation:
            text += f", {self.relation} {self.depends_on}"
        return text + (f" ({self.note})" if self.note else "")

    def to_value(self, raw: Any, values: dict, spec_value) -> Any:
        """The spec value for the sampled ``raw`` (weights mapped, relation applied)."""
        if self.kind == "weighted":
            total = float(sum(self.weights))
            edges = [sum(self.weights[:i + 1]) / total for i in range(len(self.weights))]
            return self.choices[min(bisect.bisect_right(edges, raw), len(self.choices) - 1)]
        if not self.relation:
            return raw
        parent = values.get(self.depends_on, spec_value(self.depends_on))
        return _clamp(raw, self.relation, parent, self.kind, self.low, self.high)


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _clamp(value, relation: str, parent, kind: str, low, high):
    margin = 1 if kind == "int" else EPSILON
    if relation == ">":
        value = max(value, parent + margin)
    elif relation == ">=":
        value = max(value, parent)
    elif relation == "<":
        value = min(value, parent - margin)
    elif relation == "<=":
        value = min(value, parent)
    value = min(max(value, low), high)
    return int(value) if kind == "int" else float(value)


@dataclasses.dataclass
class SearchSpace:
    """``params`` in sampling order (parents first); ``skipped``: key -> why it is not searched."""

    params: list[Param]
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.params}

    def suggest(self, trial, spec_value) -> dict[str, Any]:
        """Sample every parameter on an Optuna trial; returns dotted key -> spec value."""
        values: dict[str, Any] = {}
        for param in self.params:
            raw = _suggest(trial, param)
            values[param.name] = param.to_value(raw, values, spec_value)
        return values

    def values_of(self, raw_params: dict, spec_value) -> dict[str, Any]:
        """Spec values for given raw parameters (an enqueued or copied trial)."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.name in raw_params:
                values[param.name] = param.to_value(raw_params[param.name], values, spec_value)
        return values


def _suggest(trial, param: Param):
    if param.kind == "float":
        return trial.suggest_float(param.name, param.low, param.high, log=param.log)
    if param.kind == "int":
        return trial.suggest_int(param.name, int(param.low), int(param.high), step=param.step or 1)
    if param.kind == "weighted":
        return trial.suggest_float(param.name, 0.0, 1.0)
    return trial.suggest_categorical(param.name, list(param.choices))


# -- reading the schema ---------------------------------------------------------------------------
def schema_leaves(schema: dict) -> dict[str, dict]:
    """Dotted key -> leaf node of a TAO-style JSON schema."""
    out: dict[str, dict] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if not isinstance(child, dict):
                continue
            path = f"{prefix}.{key}" if prefix else key
            if "properties" in child:
                walk(child, path)
            else:
                out[path] = child

    walk(schema, "")
    return out


def _finite(value) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity", "-inf", "-infinity"):
        value = float(value.strip().lower().replace("infinity", "inf"))
    value = float(value)
    return value if math.isfinite(value) else None


def _no_effect(name: str, cfg) -> str | None:
    optim = cfg.train.optim
    if name == "train.optim.lr_step_size" and str(optim.lr_scheduler) != "StepLR":
        return f"no effect under train.optim.lr_scheduler {optim.lr_scheduler} (StepLR only)"
    if name == "train.optim.momentum" and str(optim.optimizer).lower() == "adamw":
        return "no effect: AdamW has no momentum parameter"
    if name == "train.optim.lr_backbone" and any(str(f).startswith("backbone") for f in (cfg.train.freeze or [])):
        return "no effect: the backbone is frozen (train.freeze)"
    return None


def _bounds(name: str, kind: str, node: dict, default) -> tuple[float, float, bool, list[str]]:
    notes = []
    low, high = _finite(node.get("minimum", node.get("valid_min"))), _finite(node.get("maximum",
                                                                                      node.get("valid_max")))
    dflt = float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None
    if low is None:
        low = dflt / 10 if dflt and dflt > 0 else (0.0 if dflt is None else dflt - abs(dflt or 1) * 10)
        notes.append("no lower bound: default / 10")
    if high is None:
        if dflt is None or dflt <= 0:
            raise AutoMLError(f"{name}: the schema gives no upper bound and no positive default to derive one; "
                              "set custom_param_ranges.{name}.valid_max")
        high = dflt * (2 if kind == "int" else 10)
        notes.append(f"unbounded above: {'2' if kind == 'int' else '10'} x default")
    log = kind == "float" and name in LOG_SCALE and dflt is not None and dflt > 0
    if log:
        low, high = max(low, dflt / 10), min(high, dflt * 10)
        notes.append("log-uniform over default / 10 .. default x 10")
    if name in FLOORS:
        low = max(low, FLOORS[name])
    if kind == "int":
        low, high = math.ceil(low), math.floor(high)
    if not high > low:
        raise AutoMLError(f"{name}: empty search range [{low}, {high}]; fix custom_param_ranges.{name}")
    return low, high, log, notes


def _param(name: str, node: dict, cfg, spec_value) -> Param:
    kind = _KINDS.get(str(node.get("type", "")).lower())
    default = node.get("default")
    if kind is None:
        raise AutoMLError(f"{name}: type {node.get('type')!r} cannot be searched (numbers, booleans and options only)")
    options = node.get("valid_options") or node.get("enum")
    if kind == "bool":
        return Param(name, "categorical", default, choices=(True, False))
    if kind == "categorical" or options:
        if not options:
            raise AutoMLError(f"{name}: an option parameter without options; set custom_param_ranges.{name}"
                              ".valid_options")
        weights = node.get("option_weights")
        if weights:
            if len(weights) != len(options) or any(float(w) < 0 for w in weights) or not sum(weights) > 0:
                raise AutoMLError(f"{name}: option_weights {weights} must be {len(options)} non-negative numbers "
                                  "with a positive sum, one per option")
            return Param(name, "weighted", default, choices=tuple(options), weights=tuple(float(w) for w in weights))
        return Param(name, "categorical", default, choices=tuple(options))
    low, high, log, notes = _bounds(name, kind, node, default)
    math_cond = str(node.get("math_cond") or "").strip()
    depends_on = str(node.get("depends_on") or "").strip() or None
    relation, step, choices = None, None, None
    if name == "model.num_select":
        queries = int(spec_value("model.num_queries"))
        if high > queries:
            high = queries
            notes.append(f"at most model.num_queries ({queries})")
    if math_cond:
        parts = math_cond.split()
        if parts[0] in RELATIONS and len(parts) == 2 and parts[1] == "depends_on":
            if not depends_on:
                raise AutoMLError(f"{name}: math_cond {math_cond!r} needs depends_on")
            relation = parts[0]
        elif parts[0] == "^" and len(parts) == 2 and kind == "int":
            base = int(parts[1])
            choices = tuple(base ** i for i in range(0, 64) if low <= base ** i <= high)
            if not choices:
                raise AutoMLError(f"{name}: no power of {base} in [{low}, {high}]")
        elif parts[0] == "/" and len(parts) == 2 and kind == "int":
            step = int(parts[1])
            low = math.ceil(low / step) * step
            high = math.floor(high / step) * step
            if high < low:
                raise AutoMLError(f"{name}: no multiple of {step} in the search range")
        else:
            raise AutoMLError(f"{name}: math_cond {math_cond!r} not understood (allowed: '^ k', '/ k', "
                              "'> depends_on', '>= depends_on', '< depends_on', '<= depends_on')")
    note = "; ".join(notes)
    if choices:
        return Param(name, "categorical", default, choices=choices, depends_on=depends_on, note=note)
    return Param(name, kind, default, low, high, log, step, depends_on=depends_on, relation=relation, note=note)


def _ordered(params: list[Param]) -> list[Param]:
    """Parents before the parameters clamped against them."""
    by_name = {p.name: p for p in params}
    done: list[Param] = []
    seen: set[str] = set()

    def visit(param: Param, trail: tuple) -> None:
        if param.name in seen:
            return
        if param.name in trail:
            raise AutoMLError(f"{param.name}: depends_on forms a cycle ({' -> '.join(trail + (param.name,))})")
        parent = by_name.get(param.depends_on) if param.relation else None
        if parent is not None:
            visit(parent, trail + (param.name,))
        seen.add(param.name)
        done.append(param)

    for param in params:
        visit(param, ())
    return done


def build_space(schema: dict, cfg, hyperparameters: list[str] | None = None,
                custom_ranges: dict[str, dict] | None = None) -> SearchSpace:
    """The search space for spec ``cfg`` from a train schema (ours, or TAO's packaged one)."""
    from ..config import get_value

    def spec_value(key: str):
        return get_value(cfg, key)

    leaves = schema_leaves(schema)
    custom = dict(custom_ranges or {})
    wanted = list(hyperparameters) if hyperparameters else list(schema.get("automl_default_parameters") or [])
    disabled = set(schema.get("automl_disabled_parameters") or [])
    for key in [*wanted, *custom]:
        if key not in leaves:
            import difflib

            close = difflib.get_close_matches(key, list(leaves), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise AutoMLError(f"AutoML parameter {key!r} is not a key of the train schema{hint}")
    params, skipped = [], {}
    for key in wanted:
        if key in disabled or leaves[key].get("automl_enabled") is False:
            raise AutoMLError(f"{key}: the train schema disables AutoML for this key (automl_enabled false)")
        reason = _no_effect(key, cfg)
        if reason:
            skipped[key] = reason
            continue
        node = {**leaves[key], **_renamed(custom.get(key, {}))}
        params.append(_param(key, node, cfg, spec_value))
    unused = sorted(set(custom) - set(wanted))
    if unused:
        raise AutoMLError(f"custom_param_ranges: {', '.join(unused)} not searched (add them to "
                          "automl_hyperparameters)")
    if not params:
        raise AutoMLError("the search space is empty: every AutoML parameter is disabled or without effect "
                          f"({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return SearchSpace(_ordered(params), skipped)


def _renamed(custom: dict) -> dict:
    """custom_param_ranges uses TAO's flattened names (valid_min ...); schema nodes use JSON's."""
    names = {"valid_min": "minimum", "valid_max": "maximum", "valid_options": "enum"}
    allowed = {"valid_min", "valid_max", "valid_options", "option_weights", "math_cond", "depends_on"}
    unknown = sorted(set(custom) - allowed)
    if unknown:
        raise AutoMLError(f"custom_param_ranges: unknown field(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(allowed))}")
    return {names.get(k, k): v for k, v in custom.items() if v is not None}
