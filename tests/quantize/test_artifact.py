"""Quantised files are recognised from the file itself, and only they: a float checkpoint whose
recorded spec names the torchao backend stays a float checkpoint."""

from __future__ import annotations

import torch

from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.quantize.artifact import sniff


def test_a_trained_checkpoint_recording_its_spec_is_not_quantized(tmp_path):
    spec = spec_to_dict(load_spec())
    assert spec["quantize"]["backend"] == "torchao"           # the string is in the file
    path = tmp_path / "model.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}, "metadata": {"spec": spec}}, path)
    assert sniff(path) is None


def test_torchao_and_modelopt_files_are_recognised(tmp_path):
    from torch import nn
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    layer = nn.Sequential(nn.Linear(32, 32))
    quantize_(layer, Int8WeightOnlyConfig())
    torchao_file, modelopt_file = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"model_state_dict": layer.state_dict()}, torchao_file)
    torch.save({"modelopt_state": {"modelopt_state_dict": []}, "model_state_dict": {}}, modelopt_file)
    assert sniff(torchao_file) == "torchao"
    assert sniff(modelopt_file) == "modelopt.pytorch"
