"""onnxruntime options by Q/DQ form (quantize/onnx_session.py): the CPU INT8 form keeps its integer MatMuls.

onnxruntime's basic-level ``MatMulAddFusion`` turns a MatMul with a 3-D input and its bias Add
into a float Gemm before the Q/DQ fusions run, so a quantised Linear layer ran in float with
de-quantised weights (48 of Swin-T's 147). Checked on a real quantised graph, through the graph
onnxruntime itself optimises."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
from graph_helpers import FeedReader, save_graph
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from mask_grounding_dino.quantize.onnx_session import qdq_form, session_options


def _linear_graph(path) -> None:
    """x [1, 16, 32] -> MatMul -> Add (bias) -> y: a Linear layer on tokens, as exported at a fixed size
    (onnxruntime fuses the pair into a Gemm only when it knows the shapes)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((32, 64)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc/MatMul"),
             helper.make_node("Add", ["m", "b"], ["y"], name="fc/Add")]
    save_graph(path, nodes, inits, [1, 16, 32], [1, 16, 64])


def _quantised(tmp_path, signed: bool):
    _linear_graph(tmp_path / "float.onnx")
    out = tmp_path / ("trt.onnx" if signed else "cpu.onnx")
    # the CPU target's settings (quantize/cpu_int8.py), or TensorRT's symmetric signed form
    quantize_static(str(tmp_path / "float.onnx"), str(out), FeedReader(4, (1, 16, 32)), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8 if signed else QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=not signed, op_types_to_quantize=["MatMul"],
                    extra_options={"MatMulConstBOnly": True, "OpTypesToExcludeOutputQuantization": ["MatMul"]})
    return out


def _optimised_ops(path, options, folder) -> collections.Counter:
    options.optimized_model_filepath = str(folder / "optimised.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED   # portable to save
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(node.op_type for node in onnx.load(str(folder / "optimised.onnx")).graph.node)


def test_forms_are_told_apart(tmp_path):
    _linear_graph(tmp_path / "float.onnx")
    assert qdq_form(tmp_path / "float.onnx") is None
    assert qdq_form(_quantised(tmp_path, signed=False)) == "cpu"
    assert qdq_form(_quantised(tmp_path, signed=True)) == "tensorrt"


def test_the_cpu_form_runs_its_linear_layer_as_an_integer_matmul(tmp_path):
    path = _quantised(tmp_path, signed=False)
    plain = _optimised_ops(path, ort.SessionOptions(), tmp_path)
    assert plain["Gemm"] == 1 and plain["MatMulIntegerToFloat"] == 0      # what the option avoids
    ours = _optimised_ops(path, session_options(path), tmp_path)
    assert ours["MatMulIntegerToFloat"] == 1 and ours["Gemm"] == 0
    x = FeedReader(1, (1, 16, 32)).get_next()
    reference = ort.InferenceSession(str(tmp_path / "float.onnx")).run(None, x)[0]
    got = ort.InferenceSession(str(path), session_options(path)).run(None, x)[0]
    # 8-bit inputs and 7-bit weights: a few percent of the output range, not a float-exact match
    assert np.abs(got - reference).max() < 0.05 * np.abs(reference).max()
