"""onnxruntime session options for quantised graphs: run TensorRT's Q/DQ form as written.

A graph in TensorRT's form (``modelopt.*``, or a ModelOpt model exported: symmetric int8,
zero point 0, signed 8-bit activations) is meant for TensorRT. onnxruntime, by default, fuses
each QuantizeLinear/DequantizeLinear pair with its MatMul / Conv into an integer kernel; on x86
CPUs without VNNI that kernel multiplies unsigned x signed bytes and adds pairs of products in
16 bits, which saturates for full-range signed weights and activations: measured on a tiny model,
the fused graph's logits moved by up to 7 while the Q/DQ arithmetic run as written (dequantise,
then float MatMul) matched ModelOpt's fake quantisation within 3e-6. Such graphs therefore run
with ``session.disable_quant_qdq``: the numbers TensorRT computes, slower.

The CPU INT8 graph (``quantize.target: cpu``: unsigned 8-bit activations, 7-bit weights) is
made for those kernels and keeps them. It runs with onnxruntime's ``MatMulAddFusion`` off. That
basic-level pass turns a MatMul plus its bias Add into a float Gemm before the Q/DQ fusions run,
so the layer's DequantizeLinear -> MatMul never becomes ``MatMulIntegerToFloat``: it runs in
float with de-quantised weights. This hit 48 of Swin-T's 147 quantised Linear layers (its
[B, N, C] MLP and projection inputs). With the pass off, the Swin-T + BERT-base INT8 graph at
800x1333 took 3.02 s instead of 3.68 s (image side, 2 threads).
"""

from __future__ import annotations

import os


def _zero_point_types(graph) -> list[int]:
    """ONNX element types of the zero points of the graph's activation QuantizeLinear nodes."""
    stored = {init.name: init.data_type for init in graph.initializer}
    weights = set(stored)
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].t.data_type:
            stored[node.output[0]] = node.attribute[0].t.data_type
    types = []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in weights and len(node.input) > 2:
            types.append(stored.get(node.input[2], 0))
    return types


def qdq_form(path: str | os.PathLike) -> str | None:
    """``"tensorrt"`` when the ONNX file at ``path`` quantises activations to signed int8 (TensorRT's form),
    ``"cpu"`` for unsigned 8-bit activations (onnxruntime's x86 form), None for a float graph."""
    import onnx

    try:
        graph = onnx.load(os.fspath(path), load_external_data=False).graph
    except Exception:  # unreadable: the session itself reports it
        return None
    types = _zero_point_types(graph)
    if onnx.TensorProto.INT8 in types:
        return "tensorrt"
    return "cpu" if onnx.TensorProto.UINT8 in types else None


def activation_step(path: str | os.PathLike) -> float:
    """The largest quantisation step (scale) of the graph's activation QuantizeLinear nodes; 0.0 for a float
    graph. A value that lies within float rounding of a rounding boundary in PyTorch's fake quantisation may
    round the other way in onnxruntime: that moves it by exactly one such step."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(os.fspath(path), load_external_data=False).graph
    except Exception:  # unreadable: the session itself reports it
        return 0.0
    weights = {init.name for init in graph.initializer}
    values = {init.name: init for init in graph.initializer}
    values.update({n.output[0]: n.attribute[0].t for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    steps = [float(numpy_helper.to_array(values[n.input[1]]).max()) for n in graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] not in weights and n.input[1] in values]
    return max(steps, default=0.0)


def session_options(path: str | os.PathLike, options=None):
    """``options`` (a new ``onnxruntime.SessionOptions`` when None), with the Q/DQ fusion off for a graph
    in TensorRT's form, and the MatMul + Add fusion off for the CPU INT8 form (see the module docstring)."""
    import onnxruntime as ort

    options = options if options is not None else ort.SessionOptions()
    form = qdq_form(path)
    if form == "tensorrt":
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    elif form == "cpu":
        options.add_session_config_entry("optimization.disable_specified_optimizers", "MatMulAddFusion")
    return options


