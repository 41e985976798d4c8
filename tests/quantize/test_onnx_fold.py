"""Frozen BatchNorms fold into their Conv before the CPU INT8 path places Q/DQ (quantize/onnx_fold.py).

A frozen BatchNorm is exported as Mul + Add after its Conv. onnxruntime folds that itself in a
float session, but not once a QuantizeLinear sits between the Conv and the Mul: each BatchNorm
then costs a DequantizeLinear, a Mul and an Add per call (about 2 of 22 ms on the quickstart
model). Checked on small real graphs, run by onnxruntime and quantised by its own quantiser."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from graph_helpers import FeedReader, op_types, save_graph
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from mask_grounding_dino.quantize.onnx_fold import fold_conv_affine


def _conv_bn_graph(path, *, second_reader: bool = False, bias: bool = False) -> None:
    """x [1, 4, 8, 8] -> (Conv -> Mul -> Add -> Relu) x 2 -> y: two frozen-BN convs. ``second_reader``:
    the first Conv's output also feeds an extra Add into ``y`` (so it must not fold); ``bias``: the
    Convs have a bias of their own."""
    rng = np.random.default_rng(0)
    inits, nodes, current = [], [], "x"
    for i, (cin, cout) in enumerate([(4, 8), (8, 8)]):
        inits += [numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.uniform(0.5, 2, (1, cout, 1, 1)).astype(np.float32), f"s{i}"),
                  numpy_helper.from_array(rng.standard_normal((1, cout, 1, 1)).astype(np.float32), f"t{i}")]
        conv_inputs = [current, f"w{i}"]
        if bias:
            inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"b{i}"))
            conv_inputs.append(f"b{i}")
        nodes += [helper.make_node("Conv", conv_inputs, [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Mul", [f"c{i}", f"s{i}"], [f"m{i}"], name=f"bn{i}/Mul"),
                  helper.make_node("Add", [f"m{i}", f"t{i}"], [f"a{i}"], name=f"bn{i}/Add"),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"relu{i}")]
        current = f"r{i}"
    if second_reader:
        nodes.append(helper.make_node("Add", ["r1", "c0"], ["y"], name="residual"))
    else:
        nodes[-1].output[0] = "y"
    save_graph(path, nodes, inits, [1, 4, 8, 8], [1, 8, 8, 8])


def _fold(src, dst) -> int:
    model = onnx.load(str(src))
    count = fold_conv_affine(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return count


def _run(path, x) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # the graph as written
    return ort.InferenceSession(str(path), options).run(None, {"x": x})[0]


def _same_outputs(a, b) -> None:
    x = np.random.default_rng(2).standard_normal((1, 4, 8, 8)).astype(np.float32)
    reference = _run(a, x)
    # float32 re-association of (x * w) * s + t into x * (w * s) + t: rounding only
    np.testing.assert_allclose(_run(b, x), reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


def test_frozen_batchnorms_fold_into_their_conv_with_the_same_outputs(tmp_path):
    for bias in (False, True):
        _conv_bn_graph(tmp_path / "float.onnx", bias=bias)
        assert _fold(tmp_path / "float.onnx", tmp_path / "folded.onnx") == 2
        assert op_types(tmp_path / "folded.onnx") == ["Conv", "Relu", "Conv", "Relu"]
        _same_outputs(tmp_path / "float.onnx", tmp_path / "folded.onnx")
        kept = {init.name for init in onnx.load(str(tmp_path / "folded.onnx")).graph.initializer}
        assert not kept & {"s0", "t0", "s1", "t1", "w0", "w1"}              # the unused originals are gone


def test_a_conv_whose_output_is_read_elsewhere_is_left_alone(tmp_path):
    _conv_bn_graph(tmp_path / "float.onnx", second_reader=True)
    assert _fold(tmp_path / "float.onnx", tmp_path / "folded.onnx") == 1     # only the second Conv
    assert op_types(tmp_path / "folded.onnx").count("Mul") == 1
    _same_outputs(tmp_path / "float.onnx", tmp_path / "folded.onnx")


def test_the_int8_graph_of_a_folded_model_has_no_batchnorm_arithmetic(tmp_path):
    _conv_bn_graph(tmp_path / "float.onnx")
    settings = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=True, op_types_to_quantize=["Conv"])
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "plain_int8.onnx"),
                    FeedReader(4, (1, 4, 8, 8)), **settings)
    _fold(tmp_path / "float.onnx", tmp_path / "folded.onnx")
    quantize_static(str(tmp_path / "folded.onnx"), str(tmp_path / "folded_int8.onnx"),
                    FeedReader(4, (1, 4, 8, 8)), **settings)
    assert {"Mul", "Add"} <= set(op_types(tmp_path / "plain_int8.onnx"))    # what folding avoids
    assert not {"Mul", "Add"} & set(op_types(tmp_path / "folded_int8.onnx"))
