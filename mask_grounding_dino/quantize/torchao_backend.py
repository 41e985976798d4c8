"""``backend: torchao``, ``mode: weight_only_ptq``: int8 or float8 weights, float activations.

Per matched layer (see ``layers.py``):

* Linear, int8: ``Int8WeightOnlyConfig`` (one scale per output channel); in the text encoder
  (``bert.*``) ``IntxWeightOnlyConfig(int8, groups of 32 input channels)``, whose finer scales
  keep BERT's outlier weight columns from coarsening whole rows;
* Linear, ``fp8_e4m3fn`` / ``fp8_e5m2``: ``Float8WeightOnlyConfig`` with that dtype;
* Embedding, int8: ``IntxWeightOnlyConfig(int8, per row)`` (the text encoder's token table is
  the largest tensor of the model); float8 embeddings are not offered by torchao.
* Conv2d, int8: ``IntxWeightOnlyConfig(int8, per output channel)``, whose tensor runs
  ``aten.convolution`` (``Int8WeightOnlyConfig``'s tensor does not). It gives one scale per
  output channel and kernel position (blocks of all input channels). Two kinds stay float and
  are listed as skipped (:func:`narrow_plan`):
  - convolutions with one input channel per group (depthwise), where torchao's block shapes
    fail; they are a few kB each;
  - float8 convolutions, which torchao runs only with its optional ``mslk`` kernels.

The result is smaller on disk and in memory. On a CPU it is no faster, because the weights
are de-quantised on the fly; the report shows this.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .errors import QuantizeError, import_optional
from .layers import LayerPlan

NAME = "torchao"
SUPPORTED = ("Linear", "Embedding", "Conv2d")
_FP8 = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


#: Input channels sharing one scale in the text encoder's int8 Linear layers.
TEXT_ENCODER_GROUP = 32


def _grouped(kind: str, dtype: str, name: str) -> bool:
    return kind == "Linear" and dtype == "int8" and name.startswith("bert.")


def narrow_plan(model: nn.Module, plan: LayerPlan) -> LayerPlan:
    """Move the Conv2d layers torchao cannot quantise (see the module docstring) from ``plan.chosen``
    to ``plan.skipped``, in place; returns ``plan``."""
    modules = dict(model.named_modules())
    for name, choice in list(plan.chosen.items()):
        if choice.kind != "Conv2d":
            continue
        if modules[name].weight.shape[1] == 1:
            reason = "torchao's int8 weights need more than one input channel per group (depthwise convolution)"
        elif choice.weights != "int8":
            reason = f"torchao runs {choice.weights} convolutions only with its optional mslk kernels"
        else:
            continue
        del plan.chosen[name]
        plan.skipped[name] = reason
    return plan


def _config(kind: str, dtype: str, name: str, grouped: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # torchao's import-time registration chatter
        quant = import_optional("torchao.quantization", "quantize.backend torchao")
    if kind == "Embedding" and dtype != "int8":
        raise QuantizeError(f"quantize.layers: {name} is an Embedding; torchao quantises embeddings to int8 "
                            f"only, not {dtype} (set its weights dtype to int8 or native)")
    if kind in ("Embedding", "Conv2d"):        # float8 Conv2d layers never get here (narrow_plan)
        from torchao.quantization.granularity import PerAxis

        return quant.IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    if dtype == "int8" and grouped:
        from torchao.quantization.granularity import PerGroup

        return quant.IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerGroup(TEXT_ENCODER_GROUP))
    if dtype == "int8":
        return quant.Int8WeightOnlyConfig()
    return quant.Float8WeightOnlyConfig(weight_dtype=getattr(torch, _FP8[dtype]))


def quantize_weights(model: nn.Module, plan: LayerPlan) -> nn.Module:
    """Quantise ``plan.chosen`` layers of ``model`` in place; returns ``model``."""
    from torchao.quantization import quantize_

    groups: dict[tuple[str, str, bool], set[str]] = {}
    for choice in plan.chosen.values():
        grouped = _grouped(choice.kind, choice.weights, choice.name)
        groups.setdefault((choice.kind, choice.weights, grouped), set()).add(choice.name)
    for (kind, dtype, grouped), names in sorted(groups.items()):
        config = _config(kind, dtype, next(iter(names)), grouped)
        quantize_(model, config, filter_fn=lambda module, fqn, names=names: fqn in names)
    return model
