"""Check a ``quantize`` spec before anything is loaded: one line per mistake, exit code 2.

Which path runs (``Request.path``):

| target   | backend           | mode            | model_path | path               |
|----------|-------------------|-----------------|------------|--------------------|
| tensorrt | torchao (default) | weight_only_ptq | .pth       | ``torchao``        |
| tensorrt | modelopt.pytorch  | static_ptq      | .pth       | ``modelopt.pytorch`` |
| tensorrt | modelopt.onnx     | static_ptq      | .onnx      | ``modelopt.onnx``  |
| cpu      | (torchao: unset)  | (either)        | .pth/.onnx | ``cpu``            |

``target: cpu`` always calibrates weights and activations (static INT8 is what makes a CPU
faster; weight-only int8 does not), so ``mode`` is not needed for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import is_unset
from ..data import fileio
from .artifact import FILE_NAMES
from .calibration import require_source
from .errors import QuantizeError, import_optional


@dataclass
class Request:
    path: str              # torchao | modelopt.pytorch | modelopt.onnx | cpu
    model_path: str        # a local file: quantize.model_path, or fileio's copy of its URL
    is_onnx: bool
    static: bool           # calibrates activations
    output_name: str


def _library(path: str) -> tuple[str, str]:
    return {"torchao": ("torchao.quantization", "quantize.backend torchao"),
            "modelopt.pytorch": ("modelopt.torch.quantization", "quantize.backend modelopt.pytorch"),
            "modelopt.onnx": ("modelopt.onnx.quantization", "quantize.backend modelopt.onnx"),
            "cpu": ("onnxruntime.quantization", "quantize.target cpu")}[path]


def check_request(cfg) -> Request:
    """The :class:`Request` of ``cfg.quantize`` (see the module docstring), or a :class:`QuantizeError`."""
    q = cfg.quantize
    model_path = "" if is_unset(q.model_path) else str(q.model_path)
    if not model_path:
        raise QuantizeError("quantize.model_path: required; give the trained checkpoint (.pth), or an exported "
                            ".onnx file for backend modelopt.onnx")
    is_onnx = model_path.lower().endswith(".onnx")
    backend, mode, target = q.backend, q.mode, q.target
    if target == "cpu":
        if backend != "torchao":
            raise QuantizeError(f"quantize.target: cpu builds onnxruntime's INT8 graph, but quantize.backend "
                                f"{backend} builds TensorRT's Q/DQ form; leave backend unset for cpu, or use "
                                "target tensorrt")
        path = "cpu"
    elif backend == "torchao":
        if mode != "weight_only_ptq":
            raise QuantizeError("quantize.mode: static_ptq is not offered by backend torchao (weight-only here); "
                                "use backend modelopt.pytorch (TensorRT) or quantize.target cpu (onnxruntime)")
        path = "torchao"
    else:
        if mode != "static_ptq":
            raise QuantizeError(f"quantize.mode: {backend} does static_ptq only (calibrated weights and "
                                "activations); set quantize.mode=static_ptq, or use backend torchao for "
                                "weight_only_ptq")
        path = backend
    if path == "modelopt.onnx" and not is_onnx:
        raise QuantizeError(f"quantize.model_path: '{model_path}' is not an .onnx file; backend modelopt.onnx "
                            "quantises an exported graph (run the export action first), or use backend "
                            "modelopt.pytorch for a .pth checkpoint")
    if path in ("torchao", "modelopt.pytorch") and is_onnx:
        raise QuantizeError(f"quantize.model_path: '{model_path}' is an ONNX file; backend {backend} quantises a "
                            ".pth checkpoint (use backend modelopt.onnx for .onnx files)")
    with fileio.spec_keys({model_path: "quantize.model_path"}):   # an unreachable URL names the key
        if not fileio.exists(model_path):
            raise QuantizeError(f"quantize.model_path: '{fileio.redact(model_path)}' does not exist")
        model_path = fileio.local_copy(model_path, "quantize.model_path")
    if str(q.algorithm).lower() in ("awq_clip", "awq_lite", "awq_full", "rtn_dq"):
        raise QuantizeError(f"quantize.algorithm: '{q.algorithm}' is an int4 weight method of ModelOpt's ONNX "
                            "quantiser; the int8/fp8 formats here calibrate with minmax, max or entropy")
    static = path != "torchao"
    if static:
        require_source(cfg, f"{'quantize.target cpu' if path == 'cpu' else backend} (static INT8 calibration)")
    module, why = _library(path)
    import_optional(module, why)
    return Request(path, model_path, is_onnx, static, FILE_NAMES[path])
