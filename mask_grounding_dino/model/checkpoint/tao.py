"""TAO Grounding DINO / Mask Grounding DINO checkpoints.

A TAO ``.pth`` is a Lightning checkpoint: ``{"state_dict": ..., "tao_model": ...}``
whose keys carry the Lightning module's ``model.model.`` prefix, TAO's
``backbone.0.body.`` for the Swin, the mask controller beside the mask head
(``controller.*``) and possibly ``module.`` (DDP) or ``ema_*`` copies (MMLab-style).
"""

from __future__ import annotations

from torch import Tensor

from ..mask_head import TAO_RENAMES as MASK_HEAD_RENAMES

#: Heads a TAO *Grounding DINO* checkpoint lacks when it initialises the mask model.
MASK_MODEL_HEADS = ("mask_head.", "rela.")


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def tao_to_ours(state: dict[str, Tensor], our_keys: set[str]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename to our keys. Returns (state dict, ignored keys)."""
    body_layout = any(k.startswith("backbone.0.body.") for k in our_keys)   # ResNet keeps ``body``
    out, ignored = {}, []
    for raw, value in state.items():
        key = _strip(raw, "module.")
        if key.startswith("ema_") or key.endswith("bert.embeddings.position_ids"):
            ignored.append(raw)
            continue
        for prefix in ("model.model.", "model."):
            if key.startswith(prefix) and key[len(prefix):].split(".")[0] in _TOP_LEVEL:
                key = key[len(prefix):]
                break
        if key.startswith("backbone.0.body.") and not body_layout:
            key = "backbone.0." + key[len("backbone.0.body."):]
        for old, new in MASK_HEAD_RENAMES.items():
            if key.startswith(old):
                key = new + key[len(old):]
        if key.startswith("label_enc.") and key not in our_keys:
            ignored.append(raw)
            continue
        out[key] = value
    return out, ignored


def ours_to_tao(state: dict[str, Tensor], tao_model: str = "mask_grounding_dino") -> dict:
    """Our state dict as a TAO Lightning checkpoint (what TAO's ``train.pretrained_model_path`` reads)."""
    body_layout = any(k.startswith("backbone.0.body.") for k in state)
    out = {}
    for key, value in state.items():
        if key.startswith("backbone.0.") and not body_layout:
            key = "backbone.0.body." + key[len("backbone.0."):]
        for old, new in MASK_HEAD_RENAMES.items():
            if key.startswith(new):
                key = old + key[len(new):]
        out["model.model." + key] = value
    return {"state_dict": out, "tao_model": tao_model}


#: First components of the model's own keys (to recognise and strip Lightning prefixes).
_TOP_LEVEL = {"backbone", "bert", "feat_map", "input_proj", "transformer", "bbox_embed", "class_embed", "label_enc",
              "mask_head", "controller", "rela"}
