"""Small real ONNX graphs and calibration feeds for the onnxruntime quantisation tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper


class FeedReader:
    """onnxruntime's ``CalibrationDataReader``: ``n`` random float feeds of input ``x`` with ``shape``."""

    def __init__(self, n: int, shape: tuple[int, ...]):
        rng = np.random.default_rng(1)
        self._feeds = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self._feeds, None)


def save_graph(path, nodes, initializers, x_shape: list[int], y_shape: list[int]) -> None:
    """A float graph ``x -> nodes -> y`` (opset 17) written to ``path``."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def op_types(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]
