"""PBT's exploit step: a copied checkpoint resumes with the explored learning rates and weight
decay (Lightning restores the optimiser's own rates on resume, so the copy must carry them)."""

from __future__ import annotations

import random

import pytest
import torch

from mask_grounding_dino.automl.pbt import perturb, transplant
from mask_grounding_dino.automl.space import Param, SearchSpace

OLD = {"lr": 2e-4, "lr_backbone": 2e-5, "lr_linear_proj_mult": 0.1, "weight_decay": 1e-4}
NEW = {"lr": 3e-4, "lr_backbone": 1e-5, "lr_linear_proj_mult": 0.2, "weight_decay": 5e-4}


def _training_state(optim: dict, epochs: int = 2):
    """An AdamW over our three parameter groups (main, backbone, projections) and a MultiStepLR,
    stepped past a decay: the two states a Lightning checkpoint stores."""
    params = [torch.nn.Parameter(torch.ones(2)) for _ in range(3)]
    rates = [optim["lr"], optim["lr_backbone"], optim["lr"] * optim["lr_linear_proj_mult"]]
    names = ("main", "backbone", "linear_proj")  # engine/optim.py's group names
    opt = torch.optim.AdamW([{"params": [p], "lr": r, "name": n} for p, r, n in zip(params, rates, names)],
                            weight_decay=optim["weight_decay"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.1)
    for _ in range(epochs):
        params[0].sum().backward()
        opt.step()
        sched.step()
    return opt, sched


def test_transplant_rewrites_rates_and_decay_and_keeps_the_schedule(tmp_path):
    opt, sched = _training_state(OLD)
    source, target = tmp_path / "source.pth", tmp_path / "target.pth"
    torch.save({"state_dict": {}, "optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()]},
               source)
    transplant(str(source), str(target), OLD, NEW)
    ckpt = torch.load(target, weights_only=True)
    new_opt, new_sched = _training_state(NEW, epochs=0)
    new_opt.load_state_dict(ckpt["optimizer_states"][0])
    new_sched.load_state_dict(ckpt["lr_schedulers"][0])
    expected = [NEW["lr"], NEW["lr_backbone"], NEW["lr"] * NEW["lr_linear_proj_mult"]]
    # Past the decay (x 0.1) at the new base rates; relative 1e-9: float products of the same numbers.
    assert [g["lr"] for g in new_opt.param_groups] == pytest.approx([0.1 * r for r in expected], rel=1e-9)
    assert new_sched.base_lrs == pytest.approx(expected, rel=1e-9)
    assert all(g["weight_decay"] == NEW["weight_decay"] for g in new_opt.param_groups)
    assert new_sched.last_epoch == 2  # the position in the schedule is kept
    # Adam's moments are the source's: the member resumes exactly from that state.
    assert torch.equal(ckpt["optimizer_states"][0]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_unchanged_rates_copy_the_file_byte_for_byte(tmp_path):
    source, target = tmp_path / "a.pth", tmp_path / "b.pth"
    source.write_bytes(b"checkpoint bytes")
    transplant(str(source), str(target), OLD, dict(OLD))
    assert target.read_bytes() == b"checkpoint bytes"


def test_explore_multiplies_or_divides_by_the_factor_within_bounds():
    space = SearchSpace([Param("train.optim.lr", "float", low=1e-5, high=1e-3, log=True),
                         Param("model.num_select", "int", low=1, high=10)])
    for seed in range(20):
        out = perturb({"train.optim.lr": 1e-4, "model.num_select": 10}, space, 1.2, random.Random(seed))
        assert out["train.optim.lr"] == pytest.approx(1.2e-4) or out["train.optim.lr"] == pytest.approx(1e-4 / 1.2)
        assert out["model.num_select"] in (8, 10)  # 10 / 1.2 rounds to 8; 12 is clipped to 10
