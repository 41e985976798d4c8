"""``model.pretrained_backbone_path``: backbone-only weights (ImageNet Swin / ResNet releases,
or the backbone part of a full checkpoint), loaded by name with a summary.

A backbone whose ImageNet weights ship in an installed package names them with
``bundled_weights`` (short name -> function returning the file), e.g. ``efficientnet_lite0``
or ``imagenet``; its ``classifier_prefixes`` are the file's classifier keys, dropped on purpose.
"""

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
#: ``model.backbone.0.body.`` is our own training checkpoints' (Lightning ``state_dict``).
_PREFIXES = ("module.", "model.model.backbone.0.body.", "model.model.backbone.0.", "model.backbone.0.body.",
             "model.backbone.0.", "backbone.0.body.", "backbone.0.", "backbone.", "encoder.", "model.")


def load_backbone_weights(body: nn.Module, path: str | os.PathLike) -> LoadSummary:
    """Load ``path`` (a file, or a short name of the backbone's bundled weights) into the backbone
    ``body`` (the module at ``backbone.0``); log and return the summary."""
    bundled = getattr(body, "bundled_weights", {})
    if str(path) in bundled and not fileio.isfile(os.fspath(path)):
        path = bundled[str(path)]()
    if not fileio.isfile(os.fspath(path)):
        hint = f" (or a bundled name: {', '.join(bundled)})" if bundled else ""
        raise CheckpointError(f"model.pretrained_backbone_path: file '{path}' does not exist{hint}")
    obj = read_safetensors(path) if str(path).endswith(".safetensors") else torch_load(path)
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"model.pretrained_backbone_path: '{path}' holds no state dict")
    ours = set(body.state_dict())
    classifier = tuple(getattr(body, "classifier_prefixes", ()))
    state, ignored = {}, []
    for key, value in obj.items():
        if not hasattr(value, "shape"):
            continue
        for prefix in _PREFIXES:
            if key.startswith(prefix) and key not in ours:
                key = key[len(prefix):]
        if key.startswith(("head.", "fc.", "norm.", "attn_mask") + classifier) or key.endswith(".attn_mask"):
            ignored.append(key)      # classifier parts and cached masks of backbone releases
            continue
        if key.endswith(".num_batches_tracked") and key not in ours and "body." + key not in ours:
            continue                 # a BatchNorm counter; frozen BatchNorm has none
        if key not in ours and "body." + key in ours:
            key = "body." + key      # torchvision ResNet weights into our ``body``
        state[key] = value
    summary = apply_state_dict(body, state, source=str(path), fmt="backbone", ignored=ignored)
    if summary.loaded == 0:
        raise CheckpointError(f"model.pretrained_backbone_path: no tensor of '{path}' matches the backbone "
                              f"(first keys: {list(obj)[:5]})")
    if getattr(body, "strict_weights", False):
        _check_fits(body, summary, path)
    log.info("pretrained backbone: %s", summary)
    return summary


def _check_fits(body: nn.Module, summary: LoadSummary, path) -> None:
    """For backbones with one known weight layout: refuse a file that fits only in part. Unused
    keys outside the backbone's own top-level names (the rest of a full checkpoint) are fine."""
    def name(key: str) -> str:
        return key.removeprefix("body.")

    own = {name(k).split(".")[0] for k in body.state_dict()}
    unused = [name(k) for k in summary.unexpected if name(k).split(".")[0] in own]
    other_shape = [name(k) for k, _, _ in summary.mismatched]
    missing = [name(k) for k in summary.missing if name(k) not in other_shape]
    if unused or missing or other_shape:
        raise CheckpointError(f"model.pretrained_backbone_path: '{path}' does not fit this backbone: "
                              f"{len(unused)} tensors unused, {len(missing)} missing, {len(other_shape)} of "
                              f"another shape (e.g. {(unused or missing or other_shape)[0]})")
