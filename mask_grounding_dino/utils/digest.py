"""A fingerprint of a set of tensors: equal digests <=> the same names with bitwise-equal values.

Used to show that two runs ended with the same weights (``bench/quickstart_seeds.py --compare``,
the determinism tests) without keeping both checkpoints around.
"""

from __future__ import annotations

import hashlib
import os

import torch


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over each tensor's name, dtype and exact bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def checkpoint_model_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model's tensors of one of our training checkpoints (``state_dict`` keys under ``model.``)."""
    checkpoint = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
