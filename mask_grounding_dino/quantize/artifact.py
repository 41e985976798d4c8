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

:func:`sniff` tells the kind from the pickle's opcodes without unpickling anything (the
checkpoint is a zip whose ``data.pkl`` names the classes it holds): a class from a ``torchao``
module, or a ``modelopt_state`` key. Plain strings do not count: every trained checkpoint
records its spec, whose ``quantize.backend`` reads ``torchao``.
"""

from __future__ import annotations

import datetime
import os
import zipfile
from typing import Any

from ..utils.atomic import atomic_torch_save

FORMAT = "mask_grounding_dino.quantized"
FORMAT_VERSION = 1
#: The file each backend writes (TAO's names).
FILE_NAMES = {"torchao": "quantized_model_torchao.pth",
              "modelopt.pytorch": "quantized_model_modelopt.pytorch.pth",
              "modelopt.onnx": "quantized_model.onnx",
              "cpu": "quantized_model_cpu_int8.onnx"}


def sniff(path: str | os.PathLike) -> str | None:
    """``"torchao"`` / ``"modelopt.pytorch"`` for a quantised ``.pth`` (a local file), else None (any other
    file)."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return None
            text = archive.read(name)
    except (OSError, zipfile.BadZipFile):
        return None
    if b"torchao" not in text and b"modelopt_state" not in text:
        return None                                   # the common case, without parsing
    return _pickled_kind(text)


def _pickled_kind(text: bytes) -> str | None:
    """``modelopt.pytorch`` for a ``modelopt_state`` key, ``torchao`` for a class of a torchao module."""
    import pickletools

    strings: list[str] = []
    kind = None
    try:
        for opcode, arg, _ in pickletools.genops(text):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                if arg == "modelopt_state":
                    return "modelopt.pytorch"
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2].startswith("torchao."):
                kind = "torchao"
            elif opcode.name == "GLOBAL" and str(arg).startswith("torchao."):
                kind = "torchao"
    except Exception:  # not a pickle we can read: an ordinary loader reports it
        return None
    return kind


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
