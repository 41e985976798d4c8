"""Test-wide settings: no network, deterministic small runs."""

import os

# No network at test time: everything must come from local files or bundled packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

import pathlib  # noqa: E402

import pytest  # noqa: E402

from mask_grounding_dino.utils.log import enable_console  # noqa: E402

# The package logs instead of printing; show its lines on stdout as the command line does, so
# tests that call actions directly read what a user sees (capsys captures them: the handler
# looks up sys.stdout when it writes).
enable_console()

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
#: TAO's packaged files, copied byte for byte into the repository (see tests/fixtures/tao/README.md).
TAO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "tao"
TAO_SKILL_BANK = TAO_FIXTURES / "tao-skill-bank"
TAO_SKILL = TAO_SKILL_BANK / "models" / "tao-train-mask-grounding-dino"


@pytest.fixture(scope="session")
def tao_skill_dir() -> pathlib.Path:
    """Folder of TAO's packaged Mask Grounding DINO skill (schemas, templates)."""
    return TAO_SKILL


@pytest.fixture(scope="session")
def tao_fixtures_dir() -> pathlib.Path:
    """``tests/fixtures/tao``: the copied skill bank and its SHA256SUMS."""
    return TAO_FIXTURES
