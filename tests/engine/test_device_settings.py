"""TAO's ``num_gpus`` / ``gpu_ids`` become Lightning's accelerator, devices and strategy; asking for
GPUs the machine does not have is one clear spec error, not Lightning's MisconfigurationException.

The GPU branch is exercised by making ``torch.cuda`` report a machine with 2 GPUs (this one has
none); the CPU branch runs as it is.
"""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.engine.trainer import device_settings
from mask_grounding_dino.errors import SpecError


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_runs_num_gpus_processes_over_gloo():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU branch; this machine has a GPU")
    settings = device_settings(load_spec(overrides=["train.num_gpus=2"]).train)
    assert (settings["accelerator"], settings["devices"], settings["num_nodes"]) == ("cpu", 2, 1)
    assert settings["strategy"].process_group_backend == "gloo"


def test_gpus_that_exist_are_used(two_gpus):
    assert device_settings(load_spec(overrides=["train.num_gpus=2"]).train)["devices"] == 2
    settings = device_settings(load_spec(overrides=["train.num_gpus=1", "train.gpu_ids=[1]"]).train)
    assert (settings["accelerator"], settings["devices"], settings["strategy"]) == ("gpu", [1], "auto")


def test_more_gpus_than_the_machine_has_is_a_spec_error(two_gpus):
    with pytest.raises(SpecError, match=r"^train.num_gpus: 4 GPUs asked for; this machine has 2\. Set "
                                        r"train.num_gpus=2 or less"):
        device_settings(load_spec(overrides=["train.num_gpus=4"]).train)


def test_a_gpu_id_the_machine_does_not_have_is_a_spec_error(two_gpus):
    with pytest.raises(SpecError, match=r"^evaluate.gpu_ids: GPU 3 does not exist; this machine has 2 GPU\(s\) "
                                        r"\(0\.\.1\)$"):
        device_settings(load_spec(overrides=["evaluate.num_gpus=1", "evaluate.gpu_ids=[3]"]).evaluate, "evaluate")
