"""Open a model file as a :class:`~.backend.Backend`: PyTorch checkpoint, ONNX file or TensorRT engine.

* ``.onnx``: :class:`~.onnx_runner.OnnxBackend` (onnxruntime);
* ``.engine`` / ``.trt`` / ``.plan``: a clear "needs TensorRT and a GPU" error;
* anything else: a checkpoint in any layout ``model.checkpoint`` reads (ours, our Lightning
  training checkpoints, TAO's, the original release, a Hugging Face folder or hub id). The
  architecture comes from the checkpoint when it records one (ours, our training
  checkpoints, Hugging Face), else from the spec's ``model`` section (TAO, original).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..data import fileio
from ..errors import CheckpointError, SpecError
from ..model.checkpoint.locate import locate_checkpoint, missing_model_message
from .backend import TorchBackend
from .devices import resolve_device
from .tensorrt import engine_error, is_engine_path
from ..utils.log import get_logger

log = get_logger(__name__)


def is_onnx_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(".onnx")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    summary: object             # model.checkpoint.LoadSummary
    architecture_from: str      # "checkpoint" | "spec"


def load_torch_model(path: str | os.PathLike, model_section=None, *, key: str = "checkpoint",
                     raw=None, ioi_threshold: float | None = None) -> LoadedModel:
    """Build the network for ``path`` and load its weights (CPU).

    Args:
        model_section: the spec's ``model`` section (a ``ModelConfig`` or dict), used when the
            checkpoint does not record its architecture.
        key: the spec key that named ``path`` (for messages).
        raw: ``path`` already read with ``read_checkpoint`` (so a caller that looked at it first,
            e.g. for its spec, does not read the file twice).
        ioi_threshold: the IoI filter the caller will apply (``<action>.ioi_threshold``); given and
            > 0, a checkpoint whose region head was never trained gets a warning.
    """
    from ..model.checkpoint import load_model, read_checkpoint
    from ..quantize.loading import load_quantized

    path = os.fspath(path)
    quantized = load_quantized(path, model_section, key=key, raw=raw)     # torchao / ModelOpt files
    if quantized is not None:
        return LoadedModel(*quantized)
    with fileio.spec_keys({path: key}):     # an unreachable URL (credentials, bucket) names the key
        raw = raw if raw is not None else read_checkpoint(locate_checkpoint(path, key))
    model, summary = load_model(raw, model_section, key=key)
    if summary.mismatched or summary.missing:
        log.warning(f"{key}: the checkpoint does not fill the whole model\n{summary}")
    if ioi_threshold and (line := untrained_region_head_note(raw, key)):
        log.warning(line)
    return LoadedModel(model, summary, summary.architecture_from)


def untrained_region_head_note(raw, key: str) -> str | None:
    """The warning for a checkpoint whose own training spec (ours record it) built the region head
    without its loss and without a warm start: its union mask is the initial one, and the IoI
    filter of ``evaluate`` / ``inference`` (``<action>.ioi_threshold``) drops detections by it."""
    from ..config import load_spec
    from ..config.validate import region_head_without_loss

    action = key.split(".")[0]
    spec = (getattr(raw, "metadata", None) or {}).get("spec")
    if not isinstance(spec, dict):
        return None
    try:
        trained = load_spec(base=spec)
    except SpecError:              # a spec this version cannot read says nothing either way
        return None
    if not region_head_without_loss(trained.model) or trained.train.pretrained_model_path:
        return None
    return (f"{key}: this checkpoint was trained with a region head (model.num_region_queries "
            f"{trained.model.num_region_queries}) but without its loss (no 'rela' in model.loss_types), so its union "
            f"mask is untrained and {action}.ioi_threshold drops detections by it at random; set "
            f"{action}.ioi_threshold=0 for this model")


def open_backend(path: str | os.PathLike, *, model_section=None, device: str | torch.device | None = None,
                 gpu_ids=None, key: str = "checkpoint", text_encoder_type: str | None = None, raw=None,
                 ioi_threshold: float | None = None):
    """A backend running ``path`` on ``device`` (default: first of ``gpu_ids`` when CUDA is there, else CPU).
    ``raw``, ``ioi_threshold``: see :func:`load_torch_model`.

    Raises :class:`SpecError` for an empty path, :class:`CheckpointError` for a missing (listing
    the model files in its folder) or unreadable file, ``TensorRTUnavailable`` for an engine.
    """
    path = os.fspath(path) if path is not None else ""
    if not path or path == "???":
        raise SpecError(f"{key}: required; give a .pth checkpoint or an .onnx file")
    if is_engine_path(path):
        raise engine_error(path, key)
    resolved = resolve_device(device, gpu_ids)
    if is_onnx_path(path):
        from .onnx_runner import OnnxBackend

        with fileio.spec_keys({path: key}):     # an unreachable URL (credentials, bucket) names the key
            if not fileio.isfile(path):
                raise CheckpointError(missing_model_message(path, key, "ONNX file"))
            return OnnxBackend(path, device=resolved, text_encoder_type=text_encoder_type)
    loaded = load_torch_model(path, model_section, key=key, raw=raw, ioi_threshold=ioi_threshold)
    return TorchBackend(loaded.model, device=resolved, source=path)
