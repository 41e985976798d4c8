"""``model.pretrained_backbone_path``: backbone-only weights (ImageNet Swin / ResNet releases,
or the backbone part of a full checkpoint), loaded by name with a summary."""

from __future__ import annotations

import logging
import os

from torch import nn

from ...data import fileio
from ...errors import CheckpointError
from .io import read_safetensors, torch_load
from .summary import LoadSummary, apply_state_dict

log = logging.getLogger(__name__)

#: Prefixes that wrap backbone weights in the files people have (longest first).
_PREFIXES = ("module.", "model.model.backbone.0.body.", "model.model.backbone.0.", "backbone.0.body.", "backbone.0.",
             "backbone.", "encoder.", "model.")


def load_backbone_weights(body: nn.Module, path: str | os.PathLike) -> LoadSummary:
    """Load ``path`` into the backbone ``body`` (the module at ``backbone.0``); log and return the summary."""
    if not fileio.isfile(os.fspath(path)):
        raise CheckpointError(f"model.pretrained_backbone_path: file '{path}' does not exist")
    obj = read_safetensors(path) if str(path).endswith(".safetensors") else torch_load(path)
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"model.pretrained_backbone_path: '{path}' holds no state dict")
    ours = set(body.state_dict())
    state, ignored = {}, []
    for key, value in obj.items():
        if not hasattr(value, "shape"):
            continue
        for prefix in _PREFIXES:
            if key.startswith(prefix) and key not in ours:
                key = key[len(prefix):]
        if key.startswith(("head.", "fc.", "norm.", "attn_mask")) or key.endswith(".attn_mask"):
            ignored.append(key)      # classifier parts and cached masks of backbone releases
            continue
        if key not in ours and "body." + key in ours:
            key = "body." + key      # torchvision ResNet weights into our ``body``
        state[key] = value
    summary = apply_state_dict(body, state, source=str(path), fmt="backbone", ignored=ignored)
    if summary.loaded == 0:
        raise CheckpointError(f"model.pretrained_backbone_path: no tensor of '{path}' matches the backbone "
                              f"(first keys: {list(obj)[:5]})")
    log.info("pretrained backbone: %s", summary)
    return summary
