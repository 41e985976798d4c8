"""Open a model file as a :class:`~.backend.Backend`: PyTorch checkpoint, ONNX file or TensorRT engine.

* ``.onnx``: :class:`~.onnx_runner.OnnxBackend` (onnxruntime);
* ``.engine`` / ``.trt`` / ``.plan``: a clear "needs TensorRT and a GPU" error;
* anything else: a checkpoint in any layout ``model.checkpoint`` reads (ours, our Lightning
  training checkpoints, TAO's, the original release, a Hugging Face folder). The
  architecture comes from the checkpoint when it records one (ours, our training
  checkpoints, Hugging Face), else from the spec's ``model`` section (TAO, original).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import CheckpointError, SpecError
from ..utils.cpu import flush_denormals
from .backend import TorchBackend
from .devices import resolve_device
from .tensorrt import engine_error, is_engine_path


def is_onnx_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(".onnx")


def _recorded_config(raw) -> dict | None:
    """Constructor arguments a checkpoint records (ours; our Lightning training checkpoints keep
    ``model_config`` beside the TAO-style state dict, which ``read_checkpoint`` picks up)."""
    return dict(raw.model_config) if raw.model_config is not None else None


@dataclass
class LoadedModel:
    model: torch.nn.Module
    summary: object             # model.checkpoint.LoadSummary
    architecture_from: str      # "checkpoint" | "spec"


def load_torch_model(path: str | os.PathLike, model_section=None, *, key: str = "checkpoint",
                     raw=None) -> LoadedModel:
    """Build the network for ``path`` and load its weights (CPU).

    Args:
        model_section: the spec's ``model`` section (a ``ModelConfig`` or dict), used when the
            checkpoint does not record its architecture.
        key: the spec key that named ``path`` (for messages).
        raw: ``path`` already read with ``read_checkpoint`` (so a caller that looked at it first,
            e.g. for its spec, does not read the file twice).
    """
    from ..model.checkpoint import load_checkpoint, read_checkpoint
    from ..model.grounding_dino import MaskGroundingDINO
    from ..quantize.loading import load_quantized

    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{key}: checkpoint '{path}' does not exist")
    quantized = load_quantized(path, model_section, key=key, raw=raw)     # torchao / ModelOpt files
    if quantized is not None:
        return LoadedModel(*quantized)
    raw = raw if raw is not None else read_checkpoint(path)
    config = _recorded_config(raw)
    if config is not None:
        config["load_text_weights"] = False       # the checkpoint holds the text encoder's weights
        model, origin = MaskGroundingDINO(**config), "checkpoint"
    elif model_section is not None:
        model, origin = MaskGroundingDINO.from_config(model_section, load_text_weights=False), "spec"
    else:
        raise CheckpointError(f"{key}: '{os.path.basename(path)}' ({raw.format} format) does not record the "
                              "model architecture; give the spec's model section")
    summary = load_checkpoint(model, raw)
    if summary.loaded == 0:
        raise CheckpointError(f"{key}: no tensor of '{path}' fits the model built from the {origin}; check the "
                              "spec's model section (backbone, hidden_dim, ...)")
    if summary.mismatched or summary.missing:
        print(f"warning: {key}: the checkpoint does not fill the whole model\n{summary}")
    return LoadedModel(model, summary, origin)


def open_backend(path: str | os.PathLike, *, model_section=None, device: str | torch.device | None = None,
                 gpu_ids=None, key: str = "checkpoint", text_encoder_type: str | None = None, raw=None):
    """A backend running ``path`` on ``device`` (default: first of ``gpu_ids`` when CUDA is there, else CPU).
    ``raw``: a checkpoint file already read (see :func:`load_torch_model`).

    Raises :class:`SpecError` for an empty path, :class:`CheckpointError` for a missing or
    unreadable file, ``TensorRTUnavailable`` for an engine.
    """
    path = os.fspath(path) if path is not None else ""
    if not path or path == "???":
        raise SpecError(f"{key}: required; give a .pth checkpoint or an .onnx file")
    if is_engine_path(path):
        raise engine_error(path, key)
    flush_denormals()     # trained weights hold subnormal values that slow CPU math (utils/cpu.py)
    resolved = resolve_device(device, gpu_ids)
    if is_onnx_path(path):
        from .onnx_runner import OnnxBackend

        if not os.path.isfile(path):
            raise CheckpointError(f"{key}: ONNX file '{path}' does not exist")
        return OnnxBackend(path, device=resolved, text_encoder_type=text_encoder_type)
    loaded = load_torch_model(path, model_section, key=key, raw=raw)
    return TorchBackend(loaded.model, device=resolved, source=path)
