"""bench/tao_criterion_labels.py counts what TAO's in-place label rule does (its numbers, by hand)."""

from __future__ import annotations

import importlib.util
import pathlib

import torch

_SPEC = importlib.util.spec_from_file_location(
    "tao_criterion_labels", pathlib.Path(__file__).resolve().parents[2] / "bench" / "tao_criterion_labels.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _match(tgt):
    return torch.arange(len(tgt)), torch.tensor(tgt)


def test_tao_rule_composes_the_layers_matches():
    labels = torch.tensor([5, 7, 9])
    # Last layer matches queries 0,1,2 to targets 2,0,1; the next layer to targets 0,1,2.
    last, aux = bench.tao_targets(labels, [_match([2, 0, 1]), _match([0, 1, 2])])
    assert last.tolist() == [9, 5, 7]                 # the first layer is right
    assert aux.tolist() == [9, 5, 7]                  # TAO: labels[[2,0,1]][[0,1,2]]; correct: [5, 7, 9]


def test_tao_rule_is_right_when_the_first_match_is_the_identity_or_classes_agree():
    labels = torch.tensor([5, 7, 9])
    _, aux = bench.tao_targets(labels, [_match([0, 1, 2]), _match([1, 2, 0])])
    assert aux.tolist() == [7, 9, 5]                  # == labels[[1, 2, 0]]
    same = torch.tensor([4, 4, 4])
    _, aux = bench.tao_targets(same, [_match([2, 0, 1]), _match([1, 2, 0])])
    assert aux.tolist() == [4, 4, 4]
