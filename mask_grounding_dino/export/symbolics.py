"""Corrections to the TorchScript ONNX exporter, active only while we export.

``aten::floor_divide`` is exported as a *truncating* ``Div`` (the exporter keeps
the pre-1.13 behaviour of ``torch.floor_divide``). Python's ``//`` on traced
sizes records that op, so ceil-divisions written ``-(-h // s)`` (e.g. window
counts of a Swin backbone) become wrong in the graph: ``-(-136 // 7)`` is 20 in
PyTorch and 19 in ONNX, and onnxruntime then fails on a Reshape. The symbolic
below floors like PyTorch.
"""

from __future__ import annotations

import contextlib

import torch
# Private modules of torch 2.14's TorchScript exporter (the pinned torch; see pyproject).
from torch.onnx._internal.torchscript_exporter import _type_utils, symbolic_helper


def _floor_divide(g, self, other):
    """``floor(self / other)`` for integer and floating inputs."""
    if symbolic_helper._is_fp(self) or symbolic_helper._is_fp(other):
        return g.op("Floor", g.op("Div", self, other))
    # Integers: ONNX Mod with fmod=0 takes the divisor's sign (Python's %), so
    # self - self % other is an exact multiple of other and Div is exact.
    other = g.op("Cast", other, to_i=_type_utils.JitScalarType.from_value(self).onnx_type())
    remainder = g.op("Mod", self, other, fmod_i=0)
    return g.op("Div", g.op("Sub", self, remainder), other)


@contextlib.contextmanager
def exporter_fixes(opset: int):
    """Register the corrected symbolics for ``opset`` for the duration of an export."""
    names = ("aten::floor_divide", "aten::floordiv")
    for name in names:
        torch.onnx.register_custom_op_symbolic(name, _floor_divide, opset)
    try:
        yield
    finally:
        for name in names:
            torch.onnx.unregister_custom_op_symbolic(name, opset)
