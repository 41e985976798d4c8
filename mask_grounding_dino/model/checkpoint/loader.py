"""One front door for every checkpoint layout: detect, rename to our keys, load, summarise.

Formats: ``native`` (ours), ``hf`` (a ``save_pretrained`` folder), ``tao`` (TAO Grounding
DINO / Mask Grounding DINO ``.pth``), ``official`` (Grounding DINO release ``{"model": ...}``),
``state_dict`` (a bare dict of tensors in our names).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor, nn

from ...data import fileio
from ...errors import CheckpointError
from .hf import hf_config_to_kwargs, hf_to_ours, read_hf_folder
from .io import read_safetensors, torch_load
from .locate import locate_checkpoint
from .native import is_native
from .official import official_to_ours
from .summary import LoadSummary, apply_state_dict
from .tao import MASK_MODEL_HEADS, tao_to_ours


class RawCheckpoint:
    """A checkpoint read from disk: its ``format``, tensors (original names) and any saved model config."""

    def __init__(self, path: str, fmt: str, state: dict[str, Tensor], model_config: dict | None = None,
                 metadata: dict | None = None):
        self.path, self.format, self.state, self.model_config = path, fmt, state, model_config
        self.metadata = metadata or {}


def _tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(hasattr(v, "shape") for v in obj.values())


def read_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """Read and classify ``path`` (file or folder, local or a URL, or a Hugging Face hub id) without
    building a model."""
    path = locate_checkpoint(path)
    if fileio.isdir(path):
        config, state = read_hf_folder(fileio.local_copy(path))
        return RawCheckpoint(path, "hf", state, model_config=hf_config_to_kwargs(config))
    if not fileio.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    obj = read_safetensors(path) if path.endswith(".safetensors") else torch_load(path)
    if is_native(obj):
        return RawCheckpoint(path, "native", obj["state_dict"], obj.get("model_config"), obj.get("metadata"))
    if isinstance(obj, dict) and "tao_model" in obj and _tensor_dict(obj.get("state_dict")):
        # TAO's layout; our own Lightning training checkpoints use it too and add ``model_config``
        # and the training spec (``hyper_parameters.spec``), kept as ``metadata["spec"]``.
        config = obj.get("model_config")
        metadata = {"tao_model": obj["tao_model"]}
        hparams = obj.get("hyper_parameters")
        if isinstance(hparams, dict) and isinstance(hparams.get("spec"), dict):
            metadata["spec"] = hparams["spec"]
        return RawCheckpoint(path, "tao", obj["state_dict"], model_config=config if isinstance(config, dict) else None,
                             metadata=metadata)
    if isinstance(obj, dict) and _tensor_dict(obj.get("model")):
        return RawCheckpoint(path, "official", obj["model"])
    if isinstance(obj, dict) and _tensor_dict(obj.get("state_dict")):
        keys = list(obj["state_dict"])
        fmt = "tao" if any(k.startswith(("model.model.", "model.backbone.", "model.transformer.")) for k in keys) \
            else "state_dict"
        config = obj.get("model_config") if fmt == "tao" else None
        return RawCheckpoint(path, fmt, obj["state_dict"], model_config=config if isinstance(config, dict) else None)
    if _tensor_dict(obj):
        keys = list(obj)
        fmt = "tao" if any(k.startswith("model.model.") for k in keys) else "official"
        return RawCheckpoint(path, fmt, obj)
    raise CheckpointError(f"'{path}' is not a model checkpoint: expected a state dict (ours, TAO's, the original "
                          "Grounding DINO release or a Hugging Face folder)")


def convert_to_ours(raw: RawCheckpoint, model: nn.Module) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """(state dict in our names, ignored keys, keys with no known name)."""
    ours = set(model.state_dict())
    if raw.format == "hf":
        return hf_to_ours(raw.state)
    if raw.format == "tao":
        state, ignored = tao_to_ours(raw.state, ours)
        return state, ignored, []
    if raw.format in ("official", "state_dict"):
        state, ignored = official_to_ours(raw.state, ours)
        return state, ignored, []
    return dict(raw.state), [], []


def load_checkpoint(model: nn.Module, path: str | os.PathLike | RawCheckpoint) -> LoadSummary:
    """Load weights of any supported layout into ``model`` by name and shape.

    Heads the checkpoint's model did not have (mask head, region head when a
    Grounding DINO checkpoint initialises the mask model) start fresh and are
    listed as such in the summary.
    """
    raw = path if isinstance(path, RawCheckpoint) else read_checkpoint(path)
    state, ignored, unknown = convert_to_ours(raw, model)
    has_heads = {p for p in MASK_MODEL_HEADS if any(k.startswith(p) for k in state)}
    fresh = tuple(p for p in MASK_MODEL_HEADS if p not in has_heads)
    summary = apply_state_dict(model, state, source=raw.path, fmt=raw.format, ignored=ignored, fresh_prefixes=fresh)
    summary.unexpected += unknown
    return summary


def build_model_for(raw: RawCheckpoint, model_config=None, *, key: str = "checkpoint",
                    **overrides) -> tuple[nn.Module, str]:
    """The network ``raw``'s weights go into, and where its architecture came from.

    The checkpoint's own record comes first (ours, our Lightning training checkpoints and
    Hugging Face folders carry one): it is what the weights were trained as. Otherwise (TAO's and
    the original release's files) ``model_config``, the spec's ``model`` section (a
    ``ModelConfig`` or a dict). ``overrides`` are extra constructor arguments (e.g.
    ``activation_checkpoint``). The text encoder is built without loading weights: the
    checkpoint holds them.
    """
    from ..grounding_dino import MaskGroundingDINO

    if raw.model_config is not None:
        kwargs = {**raw.model_config, "load_text_weights": False, **overrides}
        return MaskGroundingDINO(**kwargs), "checkpoint"
    if model_config is not None:
        return MaskGroundingDINO.from_config(model_config, **{"load_text_weights": False, **overrides}), "spec"
    raise CheckpointError(f"{key}: '{Path(raw.path).name}' ({raw.format} format) does not record the model "
                          "architecture; give the spec's model section (model_config)")


def load_model(path: str | os.PathLike | RawCheckpoint, model_config=None, *, key: str = "checkpoint",
               **overrides) -> tuple[nn.Module, LoadSummary]:
    """Build the ``MaskGroundingDINO`` for ``path`` (:func:`build_model_for`) and load it.

    Returns ``(model, summary)``; ``summary.architecture_from`` is ``"checkpoint"`` or ``"spec"``.
    A file none of whose tensors fits the model is refused (the wrong architecture was given).
    """
    raw = path if isinstance(path, RawCheckpoint) else read_checkpoint(path)
    model, origin = build_model_for(raw, model_config, key=key, **overrides)
    summary = load_checkpoint(model, raw)
    if summary.loaded == 0:
        raise CheckpointError(f"{key}: no tensor of '{raw.path}' fits the model built from the {origin}; check "
                              "the spec's model section (backbone, hidden_dim, ...)")
    summary.architecture_from = origin
    return model, summary
