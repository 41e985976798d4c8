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

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The TAO reference files live beside the project, never inside it.
SHARED = REPO_ROOT.parent / "shared"
TAO_SKILL = SHARED / "reference" / "tao-skill-bank" / "models" / "tao-train-mask-grounding-dino"


@pytest.fixture(scope="session")
def tao_skill_dir() -> pathlib.Path:
    """Folder of TAO's packaged Mask Grounding DINO skill (schemas, templates).

    Fails (does not skip) when ../shared is missing: the compatibility tests are
    part of the contract.
    """
    if not TAO_SKILL.is_dir():
        pytest.fail(f"TAO reference files not found at {TAO_SKILL}: the compatibility tests read "
                    "them from ../shared/reference (checkout layout: <root>/main and <root>/shared)")
    return TAO_SKILL
