"""``backend: modelopt.pytorch``, ``mode: static_ptq``: ModelOpt fake quantisation, calibrated.

ModelOpt wraps each matched Linear / Conv2d with quantisers for its weights (one scale per
output channel) and its input (one scale per tensor), calibrates their ranges on the
calibration batches (images with their captions), and simulates the number format in float
("fake quant"). Exported to ONNX (the ``export`` action), every quantiser becomes a standard
``QuantizeLinear``/``DequantizeLinear`` pair: symmetric int8, zero point 0, the form
TensorRT builds as a strongly typed INT8 engine. Float8 (``fp8_e4m3fn``, ``fp8_e5m2``)
simulates the same way; its ONNX export uses TensorRT-only custom ops.

Calibration algorithms (``quantize.algorithm``): ``max`` (ModelOpt's range = largest
absolute value seen); TAO's default ``minmax`` is not a ModelOpt name and means the same
symmetric max range here (a note is printed); ``entropy`` collects histograms of the inputs
and picks the range that minimises the KL divergence (weights keep max). The int4 methods
(``awq_*``, ``rtn_dq``) belong to the ONNX backend's int4 mode and are refused.
"""

from __future__ import annotations

import warnings

from torch import nn

from .errors import QuantizeError, import_optional
from .layers import LayerPlan
from ..utils.log import get_logger

log = get_logger(__name__)

NAME = "modelopt.pytorch"
SUPPORTED = ("Linear", "Conv2d")
ALGORITHMS = {"max": "max", "minmax": "max", "entropy": "entropy"}
_BITS = {"int8": 8, "fp8_e4m3fn": (4, 3), "fp8_e5m2": (5, 2)}


def check_algorithm(algorithm: str) -> str:
    """ModelOpt's name for ``quantize.algorithm``, or one error line."""
    name = str(algorithm).lower()
    if name not in ALGORITHMS:
        raise QuantizeError(f"quantize.algorithm: '{algorithm}' is not a calibration method of modelopt.pytorch "
                            f"int8/fp8 quantisation; use max or entropy (awq_*, rtn_dq are int4 methods of "
                            "modelopt.onnx)")
    if name == "minmax":
        log.info("note: quantize.algorithm minmax (TAO's default) is not a ModelOpt algorithm; using ModelOpt's max "
              "calibration (symmetric range = largest absolute value seen), which is what minmax means for a "
              "zero-point-0 format")
    return ALGORITHMS[name]


def quant_config(plan: LayerPlan, method: str) -> dict:
    """ModelOpt's ``{"quant_cfg": [...], "algorithm": ...}`` for the chosen layers only."""
    entries: list[dict] = [{"quantizer_name": "*", "enable": False}]
    for name, choice in plan.chosen.items():
        entries.append({"quantizer_name": f"{name}.weight_quantizer",
                        "cfg": {"num_bits": _BITS[choice.weights], "axis": 0}})
        if choice.activations:
            cfg = {"num_bits": _BITS[choice.activations], "axis": None}
            if method == "entropy":
                cfg["calibrator"] = "histogram"
            entries.append({"quantizer_name": f"{name}.input_quantizer", "cfg": cfg})
    # Entropy finishes the statistics itself (:func:`_finish_entropy`); ModelOpt only inserts the quantisers.
    return {"quant_cfg": entries, "algorithm": "max" if method == "max" else None}


def quantize_static(model: nn.Module, plan: LayerPlan, forward_loop, algorithm: str) -> nn.Module:
    """Insert ModelOpt quantisers into ``plan.chosen`` layers and calibrate with ``forward_loop(model)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mtq = import_optional("modelopt.torch.quantization", "quantize.backend modelopt.pytorch")
    method = check_algorithm(algorithm)
    config = quant_config(plan, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # per-module device notes for modules without quantisers
        if method == "max":
            return mtq.quantize(model, config, forward_loop)
        model = mtq.quantize(model, config, None)
        _entropy_calibrate(model, forward_loop)
    return model


def _entropy_calibrate(model: nn.Module, forward_loop) -> None:
    """ModelOpt's statistics pass with KL-divergence ranges for histogram calibrators, max for the rest."""
    from modelopt.torch.quantization.calib import HistogramCalibrator
    from modelopt.torch.quantization.model_calib import enable_stats_collection
    from modelopt.torch.quantization.nn import TensorQuantizer

    enable_stats_collection(model)
    forward_loop(model)
    for module in model.modules():
        if not isinstance(module, TensorQuantizer) or module._disabled:
            continue
        calibrator = getattr(module, "_calibrator", None)
        if isinstance(calibrator, HistogramCalibrator):
            if calibrator.compute_amax("entropy") is not None:
                module.load_calib_amax("entropy")
        elif calibrator is not None and calibrator.compute_amax() is not None:
            module.load_calib_amax()
        module.enable_quant()
        module.disable_calib()


def modelopt_state(model: nn.Module) -> dict:
    """What ``modelopt.torch.opt.restore_from_modelopt_state`` needs to rebuild the quantisers."""
    import modelopt.torch.opt as mto

    return mto.modelopt_state(model)


def input_ranges(model: nn.Module) -> dict[str, float]:
    """Calibrated input range (amax) of every enabled input quantiser, by layer name."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    ranges = {}
    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer) and name.endswith(".input_quantizer") and not module._disabled:
            amax = getattr(module, "amax", None)
            if amax is not None:
                ranges[name[: -len(".input_quantizer")]] = float(amax.max())
    return ranges
