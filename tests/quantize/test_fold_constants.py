"""The CPU INT8 path folds frozen BatchNorms into their Conv before placing Q/DQ (``fold_constants``).

A frozen BatchNorm is exported as Mul + Add after its Conv. onnxruntime folds that itself in a
float session, but not once a QuantizeLinear sits between the Conv and the Mul: each BatchNorm
then costs a DequantizeLinear, a Mul and an Add per call (about 2 of 22 ms on the quickstart
model). Checked on a small real graph with onnxruntime's own quantiser."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from graph_helpers import FeedReader, op_types, save_graph
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from mask_grounding_dino.quantize.cpu_int8 import fold_constants


def _conv_bn_graph(path) -> None:
    """x [1, 4, 8, 8] -> Conv -> Mul (scale) -> Add (shift) -> Relu -> Conv -> y: two frozen-BN convs."""
    rng = np.random.default_rng(0)
    inits, nodes, current = [], [], "x"
    for i, (cin, cout) in enumerate([(4, 8), (8, 8)]):
        inits += [numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.uniform(0.5, 2, (1, cout, 1, 1)).astype(np.float32), f"s{i}"),
                  numpy_helper.from_array(rng.standard_normal((1, cout, 1, 1)).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Mul", [f"c{i}", f"s{i}"], [f"m{i}"], name=f"bn{i}/Mul"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"bn{i}/Add"),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"relu{i}")]
        current = f"r{i}"
    nodes[-1].output[0] = "y"
    save_graph(path, nodes, inits, [1, 4, 8, 8], [1, 8, 8, 8])


def _run(path, x) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # the graph as written
    return ort.InferenceSession(str(path), options).run(None, {"x": x})[0]


def test_frozen_batchnorms_fold_into_their_conv_with_the_same_outputs(tmp_path):
    _conv_bn_graph(tmp_path / "float.onnx")
    folded = fold_constants(tmp_path / "float.onnx", tmp_path / "folded.onnx")
    assert op_types(folded) == ["Conv", "Relu", "Conv", "Relu"]
    x = np.random.default_rng(2).standard_normal((1, 4, 8, 8)).astype(np.float32)
    reference = _run(tmp_path / "float.onnx", x)
    # float32 re-association of (x * w) * s + b into x * (w * s) + b: rounding only
    np.testing.assert_allclose(_run(folded, x), reference, rtol=1e-5, atol=1e-4 * np.abs(reference).max())


def test_the_int8_graph_of_a_folded_model_has_no_batchnorm_arithmetic(tmp_path):
    _conv_bn_graph(tmp_path / "float.onnx")
    settings = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=True)
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "plain_int8.onnx"), FeedReader(4, (1, 4, 8, 8)), **settings)
    folded = fold_constants(tmp_path / "float.onnx", tmp_path / "folded.onnx")
    quantize_static(str(folded), str(tmp_path / "folded_int8.onnx"), FeedReader(4, (1, 4, 8, 8)), **settings)
    assert {"Mul", "Add"} <= set(op_types(tmp_path / "plain_int8.onnx"))        # what folding avoids
    assert not {"Mul", "Add"} & set(op_types(tmp_path / "folded_int8.onnx"))
