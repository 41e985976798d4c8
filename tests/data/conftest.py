"""Fixtures for the data tests: small PNG files and a real S3 endpoint on loopback (moto)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

# Helpers of this folder, importable by name (the suite runs with --import-mode=importlib).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from moto_s3 import moto_s3, new_bucket  # noqa: E402


def _write_png(path, width: int = 24, height: int = 16, seed: int = 0) -> np.ndarray:
    """Write a small RGB PNG with random pixels; returns its ``[H, W, 3]`` uint8 array."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def write_png():
    return _write_png


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (random port), s3fs pointed at it (see ``moto_s3.py``)."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket name (3+ characters, created without a LocationConstraint)."""
    return new_bucket()
