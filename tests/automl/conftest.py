"""Fixtures for the AutoML tests: the engine tests' tiny dataset, text encoder and training spec
(1 epoch, 16 images), and the environment trial processes run with (offline, one thread)."""

from __future__ import annotations

import pathlib
import sys

import pytest

_TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "engine"))
sys.path.insert(0, str(_TESTS / "jobs"))
sys.path.insert(0, str(_TESTS / "automl"))

from engine_helpers import make_dataset, make_text_encoder, tiny_spec, write_spec  # noqa: E402
from jobs_helpers import JOB_ENV  # noqa: E402


@pytest.fixture(scope="session")
def automl_assets(tmp_path_factory):
    """(data folder, text encoder): built once per session."""
    root = tmp_path_factory.mktemp("automl_assets")
    make_dataset(root / "data")
    return root / "data", make_text_encoder(root / "text_encoder")


@pytest.fixture
def automl_spec(automl_assets, tmp_path):
    """A 1-epoch tiny training spec whose results_dir is tmp_path/run; returns its path."""
    data, encoder = automl_assets
    spec = tiny_spec(data, encoder, tmp_path / "run", {"train.num_epochs": 1})
    return pathlib.Path(write_spec(tmp_path / "spec.yaml", spec))


@pytest.fixture
def automl_env():
    return {**JOB_ENV, "PYTHONPATH": str(_TESTS.parent)}
