"""Which layers get quantised: TAO's rules, plus a default set when the spec gives none.

Rules (``quantize.layers``, TAO's semantics): each rule's ``module_name`` is an fnmatch
pattern tried on the module's qualified name first (``transformer.encoder.layers.0.linear1``),
then on its class name (``Linear``). When several rules match a layer the LAST one wins.
``quantize.skip_names`` (same matching) removes layers afterwards. A dtype ``native`` leaves
that tensor in float; a layer whose weights stay float is not quantised.

An empty ``layers`` list (TAO quantises nothing then) selects :data:`DEFAULT_RULES` for the
mode, so the action always does something and prints what it did:

* ``weight_only_ptq``: every Linear, Conv2d and Embedding except the prediction heads (``bbox_embed``,
  ``class_embed``, ``enc_out_*``, ``label_enc``), the mask branch and the region head. The
  text encoder is included: its embedding tables (one scale per row; the word table is almost
  half of the file) and its Linear layers, which the torchao backend quantises with one scale
  per 32 input channels (BERT-family weights have outlier columns; one scale per output row
  let them set the step of a whole row). On the former main job's model (random-start ResNet,
  800 steps): bbox mAP@50 0.838 in float, 0.840 with the text encoder quantised this way, file
  0.31x; with its Linear layers left float, 0.837 and 0.61x.
* ``static_ptq``: the Linear and Conv2d layers of the image backbone, the input projections,
  the encoder (image, text and fusion layers) and the decoder layers; the text encoder, the
  heads, the mask branch and every norm stay in float. Deformable attention's
  ``sampling_offsets`` and ``attention_weights`` also stay in float (:data:`DEFAULT_SKIP`):
  8-bit error there moves the sampling points instead of scaling a feature.
  The text encoder stays float although its matrix products are the largest share of a CPU
  forward pass of the small models: with 8-bit inputs there, calibrated or measured per call,
  the quickstart model fell from 0.42 to 0.31 / 0.21 bbox mAP@50 (0.42 without).

A backend only quantises the kinds of layer it supports (``supported`` in
:func:`plan_layers`); matched layers of other kinds are listed as skipped with the reason.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field

from torch import nn

from ..config.quantize import QuantLayerConfig, QuantTensorConfig
from .errors import QuantizeError

_INT8 = QuantTensorConfig(dtype="int8")

#: Default rules by mode (used when ``quantize.layers`` is empty).
DEFAULT_RULES: dict[str, tuple[QuantLayerConfig, ...]] = {
    "weight_only_ptq": tuple(QuantLayerConfig(module_name=p, weights=_INT8) for p in (
        "backbone.*", "input_proj.*", "bert.*", "feat_map", "transformer.encoder.*", "transformer.decoder.layers.*",
        "transformer.decoder.ref_point_head.*", "transformer.enc_output")),
    "static_ptq": tuple(QuantLayerConfig(module_name=p, weights=_INT8, activations=_INT8) for p in (
        "backbone.*", "input_proj.*", "transformer.encoder.*", "transformer.decoder.layers.*")),
}

#: Skipped by default besides ``quantize.skip_names`` (when ``quantize.layers`` is empty).
DEFAULT_SKIP: dict[str, tuple[str, ...]] = {
    "weight_only_ptq": (),
    "static_ptq": ("*sampling_offsets", "*attention_weights"),
}
#: Layer kinds any backend here can quantise; a backend narrows this further.
QUANTIZABLE = (nn.Linear, nn.Conv2d, nn.Embedding)


@dataclass(frozen=True)
class LayerChoice:
    """One quantised layer: its kind and the number formats of its weights and inputs."""

    name: str
    kind: str                    # class name: Linear, Conv2d, Embedding
    weights: str                 # int8 | fp8_e4m3fn | fp8_e5m2
    activations: str | None      # same, or None = float inputs (weight-only)


@dataclass
class LayerPlan:
    """The layers to quantise and, for every other candidate layer, why not."""

    chosen: dict[str, LayerChoice] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)       # name -> reason
    kinds: dict[str, str] = field(default_factory=dict)         # name -> class name (chosen and skipped)
    defaults: bool = False                                      # the default rules were used

    def counts(self) -> Counter:
        return Counter(choice.kind for choice in self.chosen.values())

    def dtypes(self) -> set[str]:
        return {c.weights for c in self.chosen.values()} | {c.activations for c in self.chosen.values()
                                                           if c.activations}

    def summary(self) -> list[str]:
        """Printed lines: counts of quantised layers by kind and format, skipped ones by reason."""
        by_kind = Counter((c.kind, c.weights, c.activations or "float") for c in self.chosen.values())
        source = "default layer set" if self.defaults else "quantize.layers rules"
        lines = [f"quantised {len(self.chosen)} layers ({source}): " + ", ".join(
            f"{n} {kind} (weights {w}, inputs {a})" for (kind, w, a), n in sorted(by_kind.items()))]
        reasons = Counter((reason, self.kinds[name]) for name, reason in self.skipped.items())
        for (reason, kind), n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  kept in float: {n} {kind} ({reason})")
        return lines

    def as_dict(self) -> dict:
        return {"defaults": self.defaults,
                "chosen": {n: {"kind": c.kind, "weights": c.weights, "activations": c.activations}
                           for n, c in self.chosen.items()},
                "skipped": dict(self.skipped)}


def matches(name: str, kind: str, pattern: str) -> bool:
    """TAO's rule: the pattern against the qualified name first, then the class name (``kind``)."""
    return fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(kind, pattern)


def _dtype(tensor: QuantTensorConfig | None) -> str | None:
    if tensor is None:
        return None
    value = tensor.dtype if not isinstance(tensor, dict) else tensor.get("dtype", "int8")
    return None if value == "native" else str(value)


def _rules(layers) -> list[QuantLayerConfig]:
    rules = []
    for i, rule in enumerate(layers):
        if isinstance(rule, dict):          # ``layers`` is opaque in the spec: plain dicts are allowed
            unknown = sorted(set(rule) - {"module_name", "weights", "activations"})
            if unknown:
                raise QuantizeError(f"quantize.layers[{i}]: unknown key(s) {unknown}; a rule has module_name, "
                                    "weights and activations")
            rule = QuantLayerConfig(module_name=str(rule.get("module_name", "")),
                                    weights=_tensor(rule.get("weights"), f"quantize.layers[{i}].weights"),
                                    activations=_tensor(rule.get("activations"), f"quantize.layers[{i}].activations"))
        if not rule.module_name:
            raise QuantizeError(f"quantize.layers[{i}].module_name: empty; give a module path or class pattern "
                                "such as 'transformer.encoder.*' or 'Linear'")
        rules.append(rule)
    return rules


def _tensor(value, key: str) -> QuantTensorConfig | None:
    from ..config.quantize import QUANT_DTYPES

    if value is None:
        return None
    if not isinstance(value, dict):
        raise QuantizeError(f"{key}: expected a mapping such as {{dtype: int8}}, got {value!r}")
    dtype = str(value.get("dtype", "int8"))
    if dtype not in QUANT_DTYPES:
        raise QuantizeError(f"{key}.dtype: '{dtype}' is not allowed; use one of {', '.join(QUANT_DTYPES)}")
    return QuantTensorConfig(dtype=dtype, quant_axis=value.get("quant_axis"))


def model_layers(model: nn.Module) -> list[tuple[str, str, str]]:
    """(qualified name, class name, kind) of every layer of ``model`` a backend could quantise; the kind is
    the base class (``Linear`` for attention's ``NonDynamicallyQuantizableLinear``)."""
    return [(name, type(module).__name__, next(k.__name__ for k in QUANTIZABLE if isinstance(module, k)))
            for name, module in model.named_modules() if name and isinstance(module, QUANTIZABLE)]


def plan_layers(layers_of_model: list[tuple[str, str, str]], *, layers=(), skip_names=(), mode: str = "weight_only_ptq",
                supported: tuple[str, ...] = ("Linear", "Conv2d", "Embedding"), backend: str = "") -> LayerPlan:
    """The :class:`LayerPlan` for the spec's rules (see the module docstring).

    Args:
        layers_of_model: (name, class name, kind) of the candidate layers (:func:`model_layers`, or
            the layers an ONNX graph was exported from).
        layers: ``quantize.layers`` (rules, or dicts with the same keys); empty = defaults.
        skip_names: ``quantize.skip_names`` patterns.
        mode: ``weight_only_ptq`` (activations ignored) or ``static_ptq``.
        supported: kinds of layer the backend can quantise.
        backend: its name, for the skip reason of unsupported kinds.
    """
    defaults = not layers
    rules = list(DEFAULT_RULES[mode]) if defaults else _rules(layers)
    skips = list(skip_names) + (list(DEFAULT_SKIP[mode]) if defaults else [])
    plan = LayerPlan(defaults=defaults)
    for name, class_name, kind in layers_of_model:
        rule = next((r for r in reversed(rules) if matches(name, class_name, r.module_name)), None)
        if rule is None:
            if defaults:            # list what the default set leaves out (text encoder, heads, ...)
                plan.kinds[name] = kind
                plan.skipped[name] = f"not in the default set: {_group(name)}"
            continue
        plan.kinds[name] = kind
        weights = _dtype(rule.weights)
        activations = _dtype(rule.activations) if mode == "static_ptq" else None
        skip = next((p for p in skips if matches(name, class_name, p)), None)
        if skip is not None:
            plan.skipped[name] = f"skip_names '{skip}'"
        elif weights is None:
            plan.skipped[name] = f"rule '{rule.module_name}' keeps its weights native"
        elif kind not in supported:
            plan.skipped[name] = f"{backend or 'this backend'} does not quantise {kind} layers"
        else:
            plan.chosen[name] = LayerChoice(name, kind, weights, activations)
    return plan


def _group(name: str) -> str:
    parts = name.split(".")
    head = ".".join(parts[:3 if len(parts) > 3 else 2]) if parts[0] == "transformer" else parts[0]
    return f"{head}.*"
