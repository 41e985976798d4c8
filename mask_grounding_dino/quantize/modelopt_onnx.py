"""``backend: modelopt.onnx``, ``mode: static_ptq``: ModelOpt's ONNX quantiser on an exported graph.

Input: ``quantize.model_path``, an ``.onnx`` file written by the export action. ModelOpt
inserts Q/DQ pairs (symmetric int8 or float8, zero point 0) where TensorRT fuses them, after
calibrating on the calibration batches (images at the graph's input size with their
captions, text padded to the graph's length). It converts the rest of the graph to float16
by default (ModelOpt's ``high_precision_dtype``; ``quantize.backend_kwargs`` may set
``high_precision_dtype: fp32`` and other ModelOpt options). The output is TensorRT's input;
onnxruntime runs it too (for checking), slowly, on a CPU.

The layers: the graph's Linear / Conv nodes are named after the modules they came from, so
``quantize.layers`` / ``skip_names`` select them by module path as for PyTorch models
(``onnx_nodes.py``). One number format for the whole graph (ModelOpt's ``quantize_mode``).
Algorithms: ``max`` and ``entropy``; TAO's ``minmax`` maps to ``max``; the int4 methods
(``awq_*``, ``rtn_dq``) do not apply to int8 / fp8 and are refused.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .calibration import CalibrationData
from .errors import QuantizeError, import_optional
from .layers import LayerPlan
from .onnx_nodes import write_metadata

NAME = "modelopt.onnx"
_MODES = {"int8": "int8", "fp8_e4m3fn": "fp8"}
_METHODS = {"max": "max", "minmax": "max", "entropy": "entropy"}
#: ``backend_kwargs`` passed on to ``modelopt.onnx.quantization.quantize``.
PASSED_OPTIONS = ("high_precision_dtype", "mha_accumulation_dtype", "disable_mha_qdq", "op_types_to_exclude",
                  "simplify", "calibrate_per_node")


def graph_input(onnx_path: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """((H, W), text length) of the graph's ``inputs`` and ``input_ids``."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = {i.name: [d.dim_value or None for d in i.type.tensor_type.shape.dim] for i in graph.input}
    if "inputs" not in dims or "input_ids" not in dims:
        raise QuantizeError(f"quantize.model_path: '{onnx_path}' does not have Mask Grounding DINO's inputs "
                            "(inputs, input_ids, ...); export it with the export action")
    height, width = dims["inputs"][2], dims["inputs"][3]
    if not (height and width):
        raise QuantizeError(f"quantize.model_path: '{onnx_path}' has no fixed image size; export it with "
                            "export.input_width/input_height set")
    return (int(height), int(width)), int(dims["input_ids"][1] or 256)


def quantize_onnx(onnx_path: str, plan: LayerPlan, owner: dict[str, str], data: CalibrationData,
                  output: str | os.PathLike, *, algorithm: str, text_len: int, options: dict,
                  device: str, metadata: dict[str, str]) -> dict:
    """Write the quantised graph to ``output`` (atomically). Returns what was done."""
    name = str(algorithm).lower()
    if name not in _METHODS:
        raise QuantizeError(f"quantize.algorithm: '{algorithm}' is an int4 method; modelopt.onnx int8/fp8 "
                            "calibrates with max or entropy")
    formats = {c.weights for c in plan.chosen.values()} | {c.activations for c in plan.chosen.values() if c.activations}
    if len(formats) != 1 or next(iter(formats)) not in _MODES:
        raise QuantizeError(f"quantize.layers: modelopt.onnx uses one number format for the whole graph, int8 or "
                            f"fp8_e4m3fn; the rules ask for {sorted(formats) or 'none'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantization = import_optional("modelopt.onnx.quantization", "quantize.backend modelopt.onnx")
    nodes = [re.escape(node) for node, module in owner.items() if module in plan.chosen]
    feeds = [batch.onnx_feed(text_len, data.text_processor) for batch in data]
    calibration = {key: np.concatenate([f[key] for f in feeds]) for key in feeds[0]}
    extra = {k: options[k] for k in PASSED_OPTIONS if k in options}
    unknown = sorted(set(options) - set(PASSED_OPTIONS))
    if unknown:
        raise QuantizeError(f"quantize.backend_kwargs: {unknown} not used by modelopt.onnx here; allowed: "
                            f"{', '.join(PASSED_OPTIONS)}")
    output = Path(output)
    eps = ["cuda:0", "cpu"] if device.startswith("cuda") and _have_cuda() else ["cpu"]
    with tempfile.TemporaryDirectory(prefix=".quantize_", dir=output.parent) as tmp:
        result = Path(tmp) / "quantized.onnx"
        logging.getLogger("modelopt").setLevel(logging.WARNING)
        quantization.quantize(onnx_path, quantize_mode=_MODES[next(iter(formats))], calibration_data=calibration,
                              calibration_method=_METHODS[name], nodes_to_quantize=nodes, output_path=str(result),
                              calibration_eps=eps, log_level="WARNING", **extra)
        if not result.is_file():
            raise QuantizeError(f"modelopt.onnx wrote no output for '{onnx_path}'")
        write_metadata(result, {**metadata, "quantization": f"modelopt.onnx {_MODES[next(iter(formats))]}"})
        os.replace(result, output)
    return {"onnx_nodes": len(nodes), "calibration_method": _METHODS[name], "calibration_eps": eps,
            "calibration_images": int(calibration["inputs"].shape[0])}


def _have_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
