"""Image backbones by TAO's names plus small CPU presets (see ``registry.py``)."""

from . import efficientnet, resnet, swin  # noqa: F401  (registers the presets)
from .joiner import Joiner
from .registry import BackboneEntry, build_backbone, get_backbone_entry, list_backbones, register_backbone

__all__ = ["BackboneEntry", "Joiner", "build_backbone", "get_backbone_entry", "list_backbones", "register_backbone"]
