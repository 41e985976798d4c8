"""The original Grounding DINO release checkpoints (``groundingdino_swint_ogc.pth``,
``groundingdino_swinb_cogcoor.pth``): ``{"model": state_dict}`` with our names,
sometimes behind a ``module.`` prefix (saved from DistributedDataParallel)."""

from __future__ import annotations

from torch import Tensor

#: Keys of the release that our model does not have, dropped on purpose.
_DROP = ("bert.embeddings.position_ids",)


def official_to_ours(state: dict[str, Tensor], our_keys: set[str]) -> tuple[dict[str, Tensor], list[str]]:
    """Strip ``module.``; drop constant buffers and, when our model has no denoising
    queries, their label embedding. Returns (state dict in our names, ignored keys)."""
    out, ignored = {}, []
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in _DROP or (key.startswith("label_enc.") and key not in our_keys):
            ignored.append(key)
            continue
        out[key] = value
    return out, ignored
