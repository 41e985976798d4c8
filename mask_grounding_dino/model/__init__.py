"""The model layer: Grounding DINO with the mask branch and the ReLA region head.

Heavy imports (torch, transformers) happen on first use of an attribute, so
``import mask_grounding_dino.model.outputs`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MaskGroundingDINO": ".grounding_dino",
    "ImageFeatures": ".features",
    "TextFeatures": ".features",
    "GroundingOutputs": ".outputs",
    "LayerPrediction": ".outputs",
    "list_backbones": ".backbones",
    "build_backbone": ".backbones",
    "register_backbone": ".backbones",
    "load_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "load_model": ".checkpoint",
    "build_preset": ".presets",
    "preset_config": ".presets",
    "set_activation_checkpoint": ".layers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
