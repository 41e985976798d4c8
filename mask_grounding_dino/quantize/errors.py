"""The user-facing errors of quantisation (one line each, exit code 2)."""

from __future__ import annotations

import importlib

from ..errors import SpecError, UserError


class QuantizeError(SpecError):
    """A quantize request that cannot be carried out (wrong file kind, algorithm, mode, missing data)."""


class MissingLibrary(UserError):
    """An optional library a backend needs is not installed."""


#: Optional library -> what installs it. nvidia-modelopt's own ``[onnx]`` extra would replace the CPU
#: onnxruntime with onnxruntime-gpu, so our ``quantize`` extra lists its ONNX pieces one by one.
_INSTALL = {"modelopt": 'pip install -e ".[quantize]"  (or: pip install nvidia-modelopt onnx-graphsurgeon '
                        'onnxslim polygraphy lief onnxconverter-common)',
            "torchao": "pip install torchao"}


def import_optional(module: str, needed_for: str):
    """``importlib.import_module(module)``, or one :class:`MissingLibrary` line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        missing = getattr(exc, "name", None) or root
        raise MissingLibrary(f"{needed_for} needs the optional library '{missing}', which is not installed; "
                             f"install it with: {_INSTALL.get(root, 'pip install ' + root)}") from None
