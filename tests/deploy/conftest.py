"""Fixtures for the deploy tests: one tiny random-weight model and its ONNX export (96 x 96,
dynamic batch), built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

#: Export size: the tiny preset's stride-64 level then has 2 x 2 cells (GroupNorm needs > 1 value).
SIZE = (96, 96)


@pytest.fixture(scope="session")
def tiny_model():
    from mask_grounding_dino.model.presets import build_preset

    torch.manual_seed(0)
    return build_preset("tiny").eval()


@pytest.fixture(scope="session")
def onnx_file(tiny_model, tmp_path_factory):
    from mask_grounding_dino.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_model, path, input_size=SIZE)
    return path


@pytest.fixture(scope="session")
def rgb_images():
    """Two RGB uint8 pictures of different sizes: coloured blocks on noise (deterministic)."""
    rng = np.random.default_rng(0)
    out = []
    for h, w in ((64, 80), (72, 56)):
        img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        img[10:30, 12:40] = (220, 30, 30)
        img[40:60, 20:50] = (30, 30, 220)
        out.append(img)
    return out
