"""``quantize.target: cpu``: static INT8 that is really faster on x86 CPUs (onnxruntime).

The float model is exported to ONNX (the export action's graph, at the calibration size, with
a dynamic text axis: captions are padded to the longest, not to ``max_text_len``, as PyTorch
runs them; for the quickstart's 12 class names that is 38 tokens instead of 256; and deformable
attention as one GridSample per level, which onnxruntime runs ~30% faster than the gather form
TensorRT gets), then onnxruntime's ``quantize_static`` inserts QuantizeLinear/DequantizeLinear pairs around
the chosen Linear and Conv layers, with ranges calibrated on the calibration batches (images
and their captions). The format is onnxruntime's advice for x86 without VNNI: unsigned 8-bit
activations, signed 8-bit weights with one scale per output channel, and ``reduce_range``
(7-bit weights), which keeps the u8 x s8 multiply-adds of AVX2 from saturating. onnxruntime
fuses each Q/DQ pair with its MatMul / Conv into an integer kernel.

Only the inputs of a MatMul are quantised, not its output: onnxruntime then fuses
DequantizeLinear -> MatMul (-> bias Add) into one ``MatMulIntegerToFloat`` kernel whose result
is float, where a quantised output gives ``QLinearMatMul`` plus a DequantizeLinear before the
bias and one more 8-bit rounding of every result (measured on the quickstart model: bbox
mAP@50 0.420 with quantised MatMul outputs, 0.425 without; float 0.422). Conv outputs stay
quantised: ``QLinearConv`` needs them, and the next Conv reads them in 8 bits anyway.

This is not TensorRT's form (symmetric int8, zero point 0: ``modelopt.*``); on a GPU use those.
``quantize.algorithm``: ``max`` / ``minmax`` -> onnxruntime's MinMax, ``entropy`` -> Entropy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

from torch import nn

from .calibration import CalibrationData
from .errors import QuantizeError, import_optional
from .layers import LayerPlan
from .onnx_fold import fold_conv_affine
from .onnx_nodes import module_of_nodes, write_metadata

NAME = "cpu"
SUPPORTED = ("Linear", "Conv2d")
_METHODS = {"max": "MinMax", "minmax": "MinMax", "entropy": "Entropy"}


def check_algorithm(algorithm: str) -> str:
    name = str(algorithm).lower()
    if name not in _METHODS:
        raise QuantizeError(f"quantize.algorithm: '{algorithm}' is not available for quantize.target cpu "
                            f"(onnxruntime static INT8); use minmax, max or entropy")
    return _METHODS[name]


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` over the calibration batches (one feed per batch)."""

    def __init__(self, data: CalibrationData, text_len: int | None):
        self._feeds = (batch.onnx_feed(text_len, data.text_processor) for batch in data)

    def get_next(self):
        return next(self._feeds, None)


def _check_calibrators() -> None:
    """ModelOpt's ONNX quantisation replaces onnxruntime's calibrator methods for the whole process
    when it runs (``modelopt.onnx.quantization.ort_patching``); ranges recorded by those skip tensors
    our Q/DQ placement needs. Refuse with one line instead of failing deep inside onnxruntime."""
    from onnxruntime.quantization.calibrate import MinMaxCalibrater

    patched = [name for name in ("augment_graph", "collect_data", "compute_data")
               if not getattr(MinMaxCalibrater, name).__module__.startswith("onnxruntime")]
    if patched:
        raise QuantizeError("quantize.target cpu: this process already ran ModelOpt's ONNX quantisation, which "
                            "replaces onnxruntime's calibrators process-wide; run the CPU INT8 quantisation in a new "
                            "process (each mask_grounding_dino quantize command is one)")


_SESSION_LOCK = threading.Lock()


@contextlib.contextmanager
def lean_calibration_sessions():
    """While inside, onnxruntime's calibrators run their augmented graph in priority-based order.

    The calibrator appends a ReduceMin and a ReduceMax to every tensor it measures and makes
    their results graph outputs. In onnxruntime's default order those reductions may run late,
    so every measured tensor of the image stays alive until the end: Swin-T + BERT-base at
    800x1333 grew past 13 GB for one calibration image (24 GB and killed for two), against
    3.7 GB for the same graph run plainly. Priority-based order runs each reduction as soon as
    its tensor exists: 6.0 GB peak, the same ranges (min and max do not depend on the order).
    onnxruntime's ``quantize_static`` offers no session options for calibration, so the
    calibrators' session factory is swapped for the duration and restored after.
    """
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibraterBase

    original = CalibraterBase.create_inference_session

    def create_inference_session(self):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as onnxruntime's own
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        self.infer_session = ort.InferenceSession(self.augmented_model_path, sess_options=options,
                                                  providers=self.execution_providers)

    create_inference_session.__module__ = original.__module__   # still onnxruntime's (see _check_calibrators)
    with _SESSION_LOCK:
        CalibraterBase.create_inference_session = create_inference_session
        try:
            yield
        finally:
            CalibraterBase.create_inference_session = original


def quantize_graph(float_path: str | os.PathLike, plan: LayerPlan, owner: dict[str, str | None],
                   data: CalibrationData, output: str | os.PathLike, *, algorithm: str, text_len: int | None,
                   metadata: dict[str, str]) -> dict:
    """Quantise the float graph ``float_path`` (``owner``: node -> layer) into ``output``, atomically."""
    import_optional("onnxruntime.quantization", "quantize.target cpu")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    import onnx

    method = getattr(CalibrationMethod, check_algorithm(algorithm))
    _check_calibrators()
    float_model = onnx.load(str(float_path))
    graph = float_model.graph
    # onnxruntime's calibrator records no range for a graph input (the image feeding the first Conv):
    # such a layer stays float rather than failing the whole run.
    inputs = {i.name for i in graph.input}
    direct = {n.name for n in graph.node if n.input and n.input[0] in inputs}
    nodes = [node for node, module in owner.items() if module in plan.chosen and node not in direct]
    if not nodes:
        raise QuantizeError("quantize.layers: none of the selected layers appears in the ONNX graph; nothing to "
                            "quantise")
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix=".quantize_", dir=output.parent) as tmp:
        quant_path = Path(tmp) / "model_int8.onnx"
        folded = Path(tmp) / "model_fp32_folded.onnx"
        batchnorms = fold_conv_affine(float_model)       # see onnx_fold.py: not possible once Q/DQ is in
        onnx.save(float_model, str(folded))
        del float_model, graph
        with lean_calibration_sessions():
            quantize_static(str(folded), str(quant_path), _Reader(data, text_len),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                            nodes_to_quantize=nodes, op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                            calibrate_method=method,
                            extra_options={"MatMulConstBOnly": True,     # weights only: no activation x activation
                                           "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]})
        write_metadata(quant_path, {**metadata, "quantization": "onnxruntime static int8 (QDQ, U8 activations, "
                                                                 "S8 per-channel weights, reduce_range)"})
        os.replace(quant_path, output)
    return {"onnx_nodes": len(nodes), "layers_with_nodes": len({owner[n] for n in nodes}),
            "folded_batchnorms": batchnorms,
            "calibration_method": method.name}


def quantize_for_cpu(model: nn.Module, plan: LayerPlan, data: CalibrationData, output: str | os.PathLike, *,
                     input_size: tuple[int, int], algorithm: str, all_layers: list[str]) -> dict:
    """Export ``model`` at ``input_size`` and write its INT8 graph to ``output``. Returns what was done."""
    import onnx

    from ..export import export_onnx

    check_algorithm(algorithm)
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix=".quantize_", dir=output.parent) as tmp:
        float_path = Path(tmp) / "model_fp32.onnx"
        export = export_onnx(model, float_path, input_size=input_size, dynamic_text=True, msda="grid_sample")
        owner = module_of_nodes(onnx.load(str(float_path), load_external_data=False).graph, all_layers)
        details = quantize_graph(float_path, plan, owner, data, output, algorithm=algorithm,
                                 text_len=None, metadata=export.metadata)
    return {**details, "input_size": list(input_size)}
