"""Copy a name-mapped state dict into a model and say what happened, in one summary.

Shared modules appear under several names (the box head is ``bbox_embed.0..5``
and ``transformer.decoder.bbox_embed.0..5``): a parameter counts as loaded when
any of its names was provided. Some keys may be absent without harm (recomputable
buffers, the unused BERT pooler); they are never reported as missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

#: Our keys that may be absent from a checkpoint: recomputed or unused.
OPTIONAL_KEYS = (
    re.compile(r".*\.relative_position_index$"),     # Swin: rebuilt from the window size
    re.compile(r"^bert\.pooler\."),                   # frozen, unused
    re.compile(r"^bert\.embeddings\.position_ids$"),  # a constant buffer in older transformers
    re.compile(r".*\.num_batches_tracked$"),
)


def _collapse(keys: list[str], limit: int = 12) -> list[str]:
    """Group ``a.3.b`` style keys as ``a.*.b (xN)`` so a summary stays readable."""
    groups: dict[str, int] = {}
    for key in keys:
        pattern = re.sub(r"\.\d+(?=\.|$)", ".*", key)
        groups[pattern] = groups.get(pattern, 0) + 1
    lines = [f"{p} (x{n})" if n > 1 else p for p, n in groups.items()]
    return lines if len(lines) <= limit else lines[:limit] + [f"... and {len(lines) - limit} more patterns"]


@dataclass
class LoadSummary:
    """What loading ``source`` (in ``format``) into a model did."""

    source: str
    format: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)   # key, checkpoint shape, model shape
    ignored: list[str] = field(default_factory=list)                           # dropped on purpose (ema_*, ...)
    fresh: list[str] = field(default_factory=list)     # heads the checkpoint's model did not have (start fresh)
    notes: list[str] = field(default_factory=list)
    architecture_from: str = ""     # "checkpoint" | "spec" when load_model built the model

    @property
    def complete(self) -> bool:
        """Every model tensor came from the checkpoint and every checkpoint tensor was used."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {self.loaded} tensors from {self.source} ({self.format} format)"]
        if self.missing:
            lines.append(f"  missing (left at their initial values): {len(self.missing)}")
            lines += [f"    {k}" for k in _collapse(self.missing)]
        if self.unexpected:
            lines.append(f"  unexpected (not used): {len(self.unexpected)}")
            lines += [f"    {k}" for k in _collapse(self.unexpected)]
        if self.mismatched:
            lines.append(f"  shape mismatch (not loaded): {len(self.mismatched)}")
            lines += [f"    {k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched[:12]]
        if self.fresh:
            heads = sorted({k.split(".")[0] for k in self.fresh})
            lines.append(f"  new heads, not in the checkpoint (start from their initial values): "
                         f"{', '.join(heads)} ({len(self.fresh)} tensors)")
        if self.ignored:
            lines.append(f"  ignored on purpose: {len(self.ignored)}")
            lines += [f"    {k}" for k in _collapse(self.ignored, limit=4)]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def apply_state_dict(model: nn.Module, state_dict: dict[str, Tensor], *, source: str, fmt: str,
                     ignored: list[str] | None = None, optional: tuple = OPTIONAL_KEYS,
                     fresh_prefixes: tuple[str, ...] = ()) -> LoadSummary:
    """Copy ``state_dict`` (already in our names) into ``model`` by name and shape.

    ``fresh_prefixes``: modules the checkpoint is known not to have (e.g. the mask
    head when a Grounding DINO checkpoint initialises the mask model); they are
    listed under ``fresh`` instead of ``missing``.
    """
    summary = LoadSummary(source=source, format=fmt, ignored=list(ignored or []))
    ours = model.state_dict(keep_vars=True)
    owner: dict[int, str] = {}
    for key, tensor in ours.items():
        owner.setdefault(id(tensor), key)
    loaded_ids: set[int] = set()
    with torch.no_grad():
        for key, value in state_dict.items():
            target = ours.get(key)
            if target is None:
                summary.unexpected.append(key)
            elif tuple(target.shape) != tuple(value.shape):
                summary.mismatched.append((key, tuple(value.shape), tuple(target.shape)))
            else:
                target.copy_(value.to(dtype=target.dtype, device=target.device))
                if id(target) not in loaded_ids:
                    summary.loaded += 1
                loaded_ids.add(id(target))
    for key, tensor in ours.items():
        if id(tensor) in loaded_ids or owner[id(tensor)] != key or any(p.match(key) for p in optional):
            continue
        (summary.fresh if key.startswith(fresh_prefixes) else summary.missing).append(key)
    return summary
