"""Our own checkpoint format: the weights plus everything needed to rebuild the model.

``{"format": "mask_grounding_dino", "format_version": 1, "model_config": {...constructor
arguments...}, "state_dict": {...}, "metadata": {...}}`` written atomically.
"""

from __future__ import annotations

import datetime
import os

from torch import nn

from ...utils.atomic import atomic_torch_save

FORMAT = "mask_grounding_dino"
FORMAT_VERSION = 1


def is_native(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model`` (a ``MaskGroundingDINO``) with its build config and ``metadata``
    (epoch, step, spec, ...: plain Python values) to ``path``, atomically."""
    from ... import __version__
    meta = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "package_version": __version__}
    meta.update(metadata or {})
    atomic_torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, "model_config": dict(model.build_config),
                       "state_dict": model.state_dict(), "metadata": meta}, path)
