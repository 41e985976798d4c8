"""Open a quantised ``.pth`` (torchao or ModelOpt) as a ready ``MaskGroundingDINO``.

``deploy.loading.load_torch_model`` asks :func:`load_quantized` first, so every action and the
Predictor run these files like any checkpoint, with the same outputs. Quantised ONNX files
(``modelopt.onnx``, the CPU INT8 graph) are ordinary ``.onnx`` files for the ONNX runner.

* torchao: the state dict's tensor subclasses are assigned in place of the float weights
  (``load_state_dict(assign=True)``), so the quantised layers run torchao's kernels.
* ModelOpt: the float model gets ModelOpt's quantiser modules back from ``modelopt_state``
  (``restore_from_modelopt_state``), then the state dict (weights and calibrated ranges).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..data import fileio
from ..errors import CheckpointError
from ..model.checkpoint.io import torch_load
from .artifact import FORMAT, sniff
from .errors import import_optional


@dataclass
class QuantizedFile:
    """A quantised ``.pth`` read from disk."""

    path: str
    backend: str                  # torchao | modelopt.pytorch
    payload: dict

    @property
    def format(self) -> str:
        return f"quantized {self.describe()}"

    @property
    def model_config(self) -> dict | None:
        config = self.payload.get("model_config")
        return dict(config) if isinstance(config, dict) and config else None

    @property
    def metadata(self) -> dict:
        meta = self.payload.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def state_dict(self) -> dict:
        if self.payload.get("format") == FORMAT or "model_state_dict" in self.payload:
            return self.payload["model_state_dict"]
        return self.payload                         # TAO's torchao file: a bare state dict

    def describe(self) -> str:
        mode = self.payload.get("mode", "")
        return f"{self.backend} {mode}".strip()


def read_quantized(path: str | os.PathLike, key: str = "checkpoint") -> QuantizedFile | None:
    """The file read, when :func:`~.artifact.sniff` recognises it as quantised; else None (also for
    folders and hub ids, which the checkpoint reader handles). ``path`` may be a URL."""
    path = os.fspath(path)
    with fileio.spec_keys({path: key}):
        if not fileio.isfile(path):
            return None
        local = fileio.local_copy(path, key)          # fetched once; the checkpoint reader reuses the copy
    backend = sniff(local)
    if backend is None:
        return None
    # Importing the library registers its tensor classes with the weights-only unpickler.
    import_optional("torchao" if backend == "torchao" else "modelopt.torch.opt",
                    f"{key}: '{fileio.basename(path)}' (a {backend} quantised model)")
    payload = torch_load(local, placeholders=False, hint=f"it does not look like a {backend} quantised model "
                                                         "written by the quantize action")
    if not isinstance(payload, dict):
        raise CheckpointError(f"{key}: '{path}' is not a quantised model file (no state dict inside)")
    return QuantizedFile(path, backend, payload)


def build_quantized_model(qfile: QuantizedFile, model_section=None, key: str = "checkpoint"):
    """``(model, LoadSummary, origin)`` for a quantised file (CPU, eval mode)."""
    from ..model.checkpoint.loader import build_model_for
    from ..model.checkpoint.summary import LoadSummary

    model, origin = build_model_for(qfile, model_section, key=key)
    state = qfile.state_dict
    if qfile.backend == "modelopt.pytorch":
        mto = import_optional("modelopt.torch.opt", f"{key}: a ModelOpt quantised model")
        if "modelopt_state" not in qfile.payload:
            raise CheckpointError(f"{key}: '{qfile.path}' has no modelopt_state; it is not a ModelOpt file")
        model = mto.restore_from_modelopt_state(model, qfile.payload["modelopt_state"])
    try:
        result = model.load_state_dict(state, strict=False, assign=qfile.backend == "torchao")
    except RuntimeError as exc:
        raise CheckpointError(f"{key}: '{qfile.path}' does not fit the model built from the {origin} "
                              f"({str(exc).splitlines()[0][:200]})") from None
    missing = [k for k in result.missing_keys if not k.startswith("bert.pooler.")]
    summary = LoadSummary(source=qfile.path, format=qfile.format,
                          loaded=len(state) - len(result.unexpected_keys), missing=missing,
                          unexpected=list(result.unexpected_keys))
    summary.architecture_from = origin
    return model.eval(), summary, origin


def load_quantized(path: str | os.PathLike, model_section=None, *, key: str = "checkpoint", raw=None):
    """``(model, summary, origin)`` when ``path`` (or ``raw``, a file already read) is a quantised
    ``.pth``; None for any other checkpoint, which the caller loads as usual."""
    qfile = raw if isinstance(raw, QuantizedFile) else (read_quantized(path, key) if raw is None else None)
    if qfile is None:
        return None
    return build_quantized_model(qfile, model_section, key)


def read_model_file(path: str | os.PathLike):
    """A quantised file (:class:`QuantizedFile`) or any other checkpoint (``RawCheckpoint``), read once;
    both have ``.metadata`` (with ``"spec"`` when the file records its training spec)."""
    from ..model.checkpoint import read_checkpoint

    return read_quantized(path) or read_checkpoint(path)
