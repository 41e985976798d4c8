"""Backbones by name: one file per family registers its presets with :func:`register_backbone`.

Adding a backbone = one file with a decorated builder, imported in ``backbones/__init__.py``.
A builder takes ``out_indices`` (stages 0..3 = strides 4, 8, 16, 32 to return),
``dilation``, ``activation_checkpoint`` and family-specific overrides, and returns
a module with ``num_channels`` / ``strides`` (one entry per returned stage) whose
``forward(images [B,3,H,W]) -> list[Tensor]`` gives those stages' feature maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ...errors import SpecError


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    description: str
    #: True for the small CPU presets (fast tests, learning from scratch on a laptop).
    small: bool = False


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(name: str, family: str, description: str = "", small: bool = False):
    """Decorator registering ``builder(out_indices, dilation, activation_checkpoint, **overrides)``."""
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone '{name}' is registered twice")
        _REGISTRY[name] = BackboneEntry(name, family, builder, description or (builder.__doc__ or "").strip(), small)
        return builder
    return decorate


def list_backbones() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def get_backbone_entry(name: str) -> BackboneEntry:
    if name not in _REGISTRY:
        raise SpecError(f"model.backbone: '{name}' is not a known backbone; allowed: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_backbone(name: str, *, out_indices: list[int], dilation: bool = False, activation_checkpoint: bool = False,
                   **overrides) -> nn.Module:
    """The backbone ``name`` returning the stages ``out_indices`` (each in 0..3)."""
    entry = get_backbone_entry(name)
    bad = [i for i in out_indices if i not in (0, 1, 2, 3)]
    if bad or len(set(out_indices)) != len(out_indices) or list(out_indices) != sorted(out_indices):
        raise SpecError(f"model.return_interm_indices: backbone stages must be distinct, increasing values in "
                        f"0..3 (4 = the extra stride-64 level); got {list(out_indices)}")
    return entry.builder(out_indices=list(out_indices), dilation=dilation,
                         activation_checkpoint=activation_checkpoint, **overrides)
