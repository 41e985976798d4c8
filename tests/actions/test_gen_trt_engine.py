"""gen_trt_engine: the ONNX checks and the prepared trtexec command (no TensorRT here: exit 2, no engine).

The graphs are built by hand with TAO's six inputs (what the checks and the command read), so
the test needs no export: a plain float graph, a Q/DQ graph in TensorRT's form (signed int8,
zero point 0) and one in onnxruntime's CPU form (uint8 with a zero point), which is refused.
"""

from __future__ import annotations

import os
import shlex

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mask_grounding_dino import cli
from mask_grounding_dino.export.io_names import INPUT_NAMES

L = 16


def _graph(path, *, qdq: str | None = None, batch="batch_size", custom: bool = False) -> str:
    inputs = [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, [batch, 3, 48, 80])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.INT64, [batch, L]) for n in INPUT_NAMES[1:5]]
    inputs.append(helper.make_tensor_value_info("text_token_mask", TensorProto.BOOL, [batch, L, L]))
    nodes, inits, source = [], [], "inputs"
    if qdq:
        zero_type = np.int8 if qdq == "int8" else np.uint8
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
                  numpy_helper.from_array(np.array(0 if qdq == "int8" else 128, zero_type), "zero")]
        nodes += [helper.make_node("QuantizeLinear", ["inputs", "scale", "zero"], ["q"], name="q0"),
                  helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="dq0")]
        source = "dq"
    nodes.append(helper.make_node("Identity", [source], ["pred_boxes"],
                                  **({"domain": "trt"} if custom else {})))
    nodes.append(helper.make_node("Cast", ["input_ids"], ["pred_logits"], to=TensorProto.FLOAT))
    outputs = [helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, None),
               helper.make_tensor_value_info("pred_logits", TensorProto.FLOAT, None)]
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("trt", 1)] if custom else [])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=opsets)
    onnx.save(model, str(path))
    return str(path)


def _run(tmp_path, onnx_file, *extra):
    engine = tmp_path / "out" / "model.engine"
    code = cli.main(["gen_trt_engine", f"gen_trt_engine.onnx_file={onnx_file}", f"gen_trt_engine.trt_engine={engine}",
                     f"results_dir={tmp_path / 'results'}", f"model.max_text_len={L}", *extra])
    return code, engine


def _command(engine) -> list[str]:
    text = open(f"{engine}.trtexec.txt", encoding="utf-8").read()
    return shlex.split(text)


def test_plain_graph_gets_taos_profile_fp16_and_no_engine(tmp_path, capsys):
    onnx_file = _graph(tmp_path / "plain.onnx")
    code, engine = _run(tmp_path, onnx_file, "gen_trt_engine.tensorrt.data_type=fp16",
                        "gen_trt_engine.tensorrt.workspace_size=2048", "gen_trt_engine.tensorrt.max_batch_size=8")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "no engine was built" in err[0] and f"{engine}.build.sh" in err[0]
    assert not engine.exists()
    args = _command(engine)
    assert args[0] == "trtexec" and f"--onnx={os.path.abspath(onnx_file)}" in args
    assert f"--saveEngine={engine}" in args and "--memPoolSize=workspace:2048M" in args
    shapes = {a.split("=")[0]: dict(item.split(":") for item in a.split("=", 1)[1].split(","))
              for a in args if a.startswith(("--minShapes", "--optShapes", "--maxShapes"))}
    assert shapes["--minShapes"]["inputs"] == "1x3x48x80" and shapes["--maxShapes"]["inputs"] == "8x3x48x80"
    assert shapes["--optShapes"]["text_token_mask"] == f"1x{L}x{L}"
    assert all(shapes["--maxShapes"][n] == f"8x{L}" for n in INPUT_NAMES[1:5])
    assert "--fp16" in args and "--stronglyTyped" not in args
    script = open(f"{engine}.build.sh", encoding="utf-8").read()
    assert script.startswith("#!/bin/sh") and shlex.join(args) in script
    assert os.access(f"{engine}.build.sh", os.X_OK)


def test_qdq_graph_is_built_strongly_typed_without_precision_flags(tmp_path, capsys):
    code, engine = _run(tmp_path, _graph(tmp_path / "qdq.onnx", qdq="int8"), "gen_trt_engine.tensorrt.data_type=fp16",
                        "gen_trt_engine.batch_size=2")
    assert code == 2 and not engine.exists()
    args = _command(engine)
    assert "--stronglyTyped" in args and "--fp16" not in args
    assert [a for a in args if a.startswith("--minShapes")][0].split("=", 1)[1].startswith("inputs:2x3x48x80")
    assert "strongly typed" in capsys.readouterr().out


def test_fixed_batch_graph_takes_no_shapes(tmp_path):
    code, engine = _run(tmp_path, _graph(tmp_path / "fixed.onnx", batch=1))
    assert code == 2
    assert not any(a.startswith("--minShapes") for a in _command(engine))


@pytest.mark.parametrize("kind, message", [
    ("uint8", "quantise to an unsigned type; TensorRT builds signed int8"),
    ("custom", "need TensorRT plugins"),
])
def test_graphs_tensorrt_would_refuse_get_one_line(tmp_path, capsys, kind, message):
    path = _graph(tmp_path / f"{kind}.onnx", qdq="uint8" if kind == "uint8" else None, custom=kind == "custom")
    code, engine = _run(tmp_path, path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "gen_trt_engine.onnx_file" in err[0]
    assert not os.path.exists(f"{engine}.build.sh") and not engine.exists()


def test_not_our_inputs_and_missing_file(tmp_path, capsys):
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    onnx.save(model, str(tmp_path / "other.onnx"))
    assert _run(tmp_path, tmp_path / "other.onnx")[0] == 2
    assert _run(tmp_path, tmp_path / "missing.onnx")[0] == 2
    err = capsys.readouterr().err
    assert "Mask Grounding DINO's are ['inputs'" in err and "missing.onnx' does not exist" in err
