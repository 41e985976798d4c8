"""The quantised ``.pth`` files: TAO's names, our metadata, recognised from the file itself.

Files (in ``quantize.results_dir``, TAO's names):

* ``quantized_model_torchao.pth``: ``model_state_dict`` holds torchao tensor subclasses
  (int8 / float8 weights with their scales) for the quantised layers, float tensors elsewhere;
* ``quantized_model_modelopt.pytorch.pth``: ModelOpt's layout (``modelopt_state`` +
  ``model_state_dict``, what ``modelopt.torch.opt.save`` writes), so ModelOpt restores it too.

Both also carry ``format: mask_grounding_dino.quantized``, ``backend``, ``mode``,
``model_config`` (the architecture), the layer plan and the spec, so ``evaluate``,
``inference``, ``export`` and the Predictor load them with no spec. TAO's own torchao file (a
bare state dict of tensor subclasses) and ModelOpt files without our keys are recognised too;
their architecture then comes from the spec's ``model`` section.

:func:`sniff` tells the kind from the pickle's text without unpickling anything (the
checkpoint is a zip whose ``data.pkl`` names the classes it holds), so ordinary checkpoints
pay nothing.
"""

from __future__ import annotations

import datetime
import os
import zipfile
from typing import Any

from ..model.checkpoint.io import atomic_torch_save

FORMAT = "mask_grounding_dino.quantized"
FORMAT_VERSION = 1
#: The file each backend writes (TAO's names).
FILE_NAMES = {"torchao": "quantized_model_torchao.pth",
              "modelopt.pytorch": "quantized_model_modelopt.pytorch.pth",
              "modelopt.onnx": "quantized_model.onnx",
              "cpu": "quantized_model_cpu_int8.onnx"}
_MARKERS = ((b"modelopt_state", "modelopt.pytorch"), (b"torchao", "torchao"))


def sniff(path: str | os.PathLike) -> str | None:
    """``"torchao"`` / ``"modelopt.pytorch"`` for a quantised ``.pth``, else None (any other file)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return None
            text = archive.read(name)
    except (OSError, zipfile.BadZipFile):
        return None
    return next((kind for marker, kind in _MARKERS if marker in text), None)


def build_payload(*, backend: str, mode: str, model, state_dict: dict, plan: dict, spec: dict | None,
                  source: str, extra: dict[str, Any] | None = None) -> dict:
    """The dict written to a quantised ``.pth`` (see the module docstring)."""
    from .. import __version__

    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "backend": backend, "mode": mode,
               "model_config": dict(getattr(model, "build_config", {}) or {}), "layer_plan": plan,
               "model_state_dict": state_dict,
               "metadata": {"spec": spec, "source": source, "package_version": __version__,
                            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}
    payload.update(extra or {})
    return payload


def write_payload(payload: dict, path: str | os.PathLike) -> None:
    """Atomically: a failed write leaves no partial file under the final name."""
    atomic_torch_save(payload, path)
