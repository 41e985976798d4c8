"""Model files -> backends: our checkpoints, our Lightning training checkpoints, ONNX, engines, mistakes."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mask_grounding_dino.deploy import OnnxBackend, TensorRTUnavailable, TorchBackend, open_backend
from mask_grounding_dino.deploy.loading import load_torch_model
from mask_grounding_dino.errors import CheckpointError, SpecError
from mask_grounding_dino.model.checkpoint import save_checkpoint


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_native_checkpoint_opens_as_pytorch_backend(tiny_model, tmp_path):
    path = tmp_path / "tiny.pth"
    save_checkpoint(tiny_model, path)
    backend = open_backend(path, device="cpu")
    assert isinstance(backend, TorchBackend) and backend.fixed_input_size is None
    assert _same_weights(backend.model, tiny_model)
    assert backend.text_processor.max_text_len == 256


def test_lightning_training_checkpoint_brings_its_architecture(tiny_model, tmp_path):
    """``train`` saves Lightning checkpoints: ``model.``-prefixed weights plus ``model_config``."""
    path = tmp_path / "model_epoch_000_step_00001.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in tiny_model.state_dict().items()},
                "tao_model": "mask_grounding_dino", "model_config": dict(tiny_model.build_config),
                "epoch": 0, "global_step": 1}, path)
    loaded = load_torch_model(path)               # no spec: the architecture comes from the file
    assert loaded.architecture_from == "checkpoint" and loaded.summary.complete
    assert _same_weights(loaded.model, tiny_model)


def test_lightning_training_checkpoint_brings_its_spec(tiny_model, tmp_path):
    """The Predictor reads a training checkpoint's spec (its resize, thresholds) from the same read."""
    from mask_grounding_dino.model.checkpoint import read_checkpoint

    path = tmp_path / "model_epoch_000_step_00001.pth"
    spec = {"dataset": {"augmentation": {"test_random_resize": 96}}}
    torch.save({"state_dict": {f"model.{k}": v for k, v in tiny_model.state_dict().items()},
                "tao_model": "mask_grounding_dino", "model_config": dict(tiny_model.build_config),
                "hyper_parameters": {"spec": spec}}, path)
    raw = read_checkpoint(path)
    assert raw.metadata["spec"] == spec
    loaded = load_torch_model(path, raw=raw)
    assert loaded.architecture_from == "checkpoint" and _same_weights(loaded.model, tiny_model)


def test_tao_checkpoint_without_architecture_needs_the_spec(tiny_model, tmp_path):
    path = tmp_path / "tao.pth"
    torch.save({"state_dict": {f"model.model.{k}": v for k, v in tiny_model.state_dict().items()},
                "tao_model": "mask_grounding_dino"}, path)
    with pytest.raises(CheckpointError, match="does not record the model architecture; give the spec's model"):
        load_torch_model(path)


def test_onnx_path_opens_onnxruntime(onnx_file):
    backend = open_backend(onnx_file)
    assert isinstance(backend, OnnxBackend) and backend.fixed_input_size == (96, 96)


def test_a_graph_without_taos_inputs_is_refused(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(CheckpointError, match=r"does not have Mask Grounding DINO's inputs: it has \['x'\]"):
        open_backend(path)


@pytest.mark.parametrize("name, error, message", [
    ("model.engine", TensorRTUnavailable, "checkpoint: '{path}' is a TensorRT engine; running it needs TensorRT "
                                          "and a GPU"),
    ("missing.pth", CheckpointError, "checkpoint: checkpoint '{path}' does not exist"),
    ("missing.onnx", CheckpointError, "checkpoint: ONNX file '{path}' does not exist"),
    ("", SpecError, "checkpoint: required; give a .pth checkpoint or an .onnx file"),
])
def test_bad_paths_name_the_key_and_the_problem(tmp_path, name, error, message):
    path = str(tmp_path / name) if name else ""
    with pytest.raises(error) as info:
        open_backend(path)
    assert str(info.value).startswith(message.format(path=path)) and "\n" not in str(info.value)
