"""Whether the model is being turned into a graph, so that eager-only shortcuts stay out of it."""

from __future__ import annotations

import torch


def exporting() -> bool:
    """True while exporting or tracing: ONNX export, ``torch.jit.trace``, ``torch.export``."""
    return bool(torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_exporting())


def capturing_graph() -> bool:
    """:func:`exporting`, or compiling with ``torch.compile``: data-dependent Python branches and
    hand-written autograd functions must not enter the graph."""
    return exporting() or bool(torch.compiler.is_compiling())
