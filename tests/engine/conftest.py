"""Session fixtures for the engine tests: a tiny dataset + text encoder, and one reference run."""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import pytest

# The suite imports test files with --import-mode=importlib (no test folder on sys.path):
# make the shared helpers of this folder importable by name.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from engine_helpers import (REFERENCE, RunRecorder, make_dataset, make_text_encoder, tiny_spec,  # noqa: E402
                            train_in_process)


@dataclasses.dataclass(frozen=True)
class Assets:
    data: pathlib.Path
    text_encoder: str
    root: pathlib.Path

    def spec(self, results_dir, overrides: dict | None = None) -> dict:
        """``tiny_spec`` on these assets with dotted-key ``overrides``."""
        return tiny_spec(self.data, self.text_encoder, results_dir, overrides)


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("engine_assets")
    make_dataset(root / "data")
    return Assets(data=root / "data", text_encoder=make_text_encoder(root / "text_encoder"), root=root)


@pytest.fixture(scope="session")
def reference_run(assets, tmp_path_factory) -> pathlib.Path:
    """Training folder (``results/train``) of the reference run (REFERENCE); its RunRecorder record is in
    ``../../record``."""
    root = tmp_path_factory.mktemp("reference")
    return train_in_process(tiny_spec(assets.data, assets.text_encoder, root / "results", REFERENCE),
                            root / "spec.yaml", callbacks=[RunRecorder(root / "record")])
