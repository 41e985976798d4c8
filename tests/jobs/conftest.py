"""Fixtures for the job tests: the engine tests' tiny dataset, text encoder and training spec
(extended to every action of the chain), a job environment, and one chain run shared by the
slow tests (train -> export -> evaluate + inference, run once per session)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import pytest

_TESTS = pathlib.Path(__file__).resolve().parents[1]
# Import the engine tests' builders and ours by name (the suite runs with --import-mode=importlib).
sys.path.insert(0, str(_TESTS / "engine"))
sys.path.insert(0, str(_TESTS / "jobs"))

from engine_helpers import REFERENCE, cli_env, make_dataset, make_text_encoder, tiny_spec, write_spec  # noqa: E402
from jobs_helpers import JOB_TIMEOUT, job_environment  # noqa: E402


@pytest.fixture
def job_env():
    with job_environment():
        yield


@dataclasses.dataclass(frozen=True)
class ChainAssets:
    data: pathlib.Path
    spec_file: pathlib.Path  # every action's inputs, no results_dir, no model path
    categories: list[str]


@pytest.fixture(scope="session")
def chain_assets(tmp_path_factory) -> ChainAssets:
    root = tmp_path_factory.mktemp("job_assets")
    make_dataset(root / "data")
    encoder = make_text_encoder(root / "text_encoder")
    spec = tiny_spec(root / "data", encoder, root / "unused", REFERENCE)
    del spec["results_dir"]  # a job owns its folder
    val = spec["dataset"]["val_data_sources"]
    categories = [c["name"] for c in json.loads((root / "data" / "val" / "annotations.json").read_text())["categories"]]
    spec["dataset"]["test_data_sources"] = dict(val)
    spec["dataset"]["infer_data_sources"] = {"image_dir": [val["image_dir"]], "captions": categories}
    # 96 x 96: the tiny backbone's stride-64 level then has 2 x 2 cells (GroupNorm needs > 1 value).
    spec["export"] = {"input_width": 96, "input_height": 96}
    return ChainAssets(root / "data", pathlib.Path(write_spec(root / "chain.yaml", spec)), categories)


@dataclasses.dataclass(frozen=True)
class ChainRun:
    workspace_path: pathlib.Path
    jobs: dict  # action -> Job, as finished
    stdout: str  # what `jobs chain` printed


@pytest.fixture(scope="session")
def chain_run(chain_assets, tmp_path_factory) -> ChainRun:
    """``mask_grounding_dino jobs chain -e chain.yaml`` run to the end (once per session), with plain
    training (``auto`` would make its train job an AutoML study: tests/automl covers those)."""
    import subprocess

    from mask_grounding_dino.jobs import Workspace

    workspace = tmp_path_factory.mktemp("chain") / "mgd_jobs"
    env = {**cli_env(), "MASK_GROUNDING_DINO_JOBS": str(workspace)}
    out = subprocess.run([sys.executable, "-m", "mask_grounding_dino", "jobs", "chain", "-e",
                          str(chain_assets.spec_file), "--name", "tiny",
                          "--automl-policy", "off"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=str(chain_assets.spec_file.parent))
    assert out.returncode == 0, out.stderr
    ws = Workspace(workspace, start_runner=False)
    jobs = {j.action: j for j in ws.list_jobs()}
    with job_environment():
        finished = Workspace(workspace).wait([j.id for j in jobs.values()], timeout=JOB_TIMEOUT)
    return ChainRun(workspace, {j.action: j for j in finished}, out.stdout)
