"""TensorRT engines: recognised by their file name, refused with a clear reason.

Running a serialized engine needs the ``tensorrt`` package and an NVIDIA GPU. This
version has no TensorRT runner yet; an ``.engine`` path gets one error line saying what
is needed and what to use instead (the ``.onnx`` file or the ``.pth`` checkpoint, which
run anywhere).
"""

from __future__ import annotations

import importlib.util
import os

from ..errors import UserError

ENGINE_SUFFIXES = (".engine", ".trt", ".plan")


class TensorRTUnavailable(UserError):
    """A TensorRT engine was given where this installation cannot run one."""


def is_engine_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(ENGINE_SUFFIXES)


def engine_error(path: str | os.PathLike, key: str = "checkpoint") -> TensorRTUnavailable:
    """The error for running ``path`` (given as spec key ``key``)."""
    have_trt = importlib.util.find_spec("tensorrt") is not None
    try:
        import torch
        have_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        have_gpu = False
    missing = [what for what, ok in (("the tensorrt package", have_trt), ("an NVIDIA GPU", have_gpu)) if not ok]
    if missing:
        reason = f"running it needs TensorRT and a GPU, and this machine lacks {' and '.join(missing)}"
    else:
        reason = "this version has no TensorRT runner yet"
    return TensorRTUnavailable(f"{key}: '{os.fspath(path)}' is a TensorRT engine; {reason}. Use the exported "
                               ".onnx file or the .pth checkpoint instead")
