"""Helpers for the Grounding DINO model tests, offered as the ``gd`` fixture (the suite
imports test files in importlib mode, so sibling helper modules are not importable)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from mask_grounding_dino.model.presets import build_preset
from mask_grounding_dino.text import TextProcessor


@functools.lru_cache(maxsize=None)
def _processor(name: str) -> TextProcessor:
    return TextProcessor(name, 256)


def _text_inputs(captions, name: str = "bert-base-uncased"):
    return _processor(name)(list(captions))


def _tiny_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_preset("tiny", **overrides)


def _images(batch: int, h: int = 96, w: int = 128, seed: int = 0, pad_right: int = 0, pad_bottom: int = 0):
    """Random normalised images; the last one zero-padded by the given margins (mask True = pad)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, h, w, generator=g)
    mask = torch.zeros(batch, h, w, dtype=torch.bool)
    if pad_right:
        mask[-1, :, w - pad_right:] = True
    if pad_bottom:
        mask[-1, h - pad_bottom:, :] = True
    return x.masked_fill(mask[:, None], 0.0), mask


def _run(model, x, mask, captions):
    return model(x, *_text_inputs(captions).as_tuple(), pixel_mask=mask)


def _perturb(module: torch.nn.Module, scale: float = 0.02, seed: int = 0) -> None:
    """Add noise to every parameter so zero-initialised heads are exercised too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture(scope="session")
def gd():
    return SimpleNamespace(tiny_model=_tiny_model, images=_images, text_inputs=_text_inputs, run=_run,
                           perturb=_perturb)
