"""``Predictor.from_onnx``: the Python API over onnxruntime gives the PyTorch predictor's results."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.api import Predictor
from mask_grounding_dino.deploy import ImagePreprocessor, Thresholds, TorchBackend
from mask_grounding_dino.errors import UserError


def test_onnx_predictor_matches_pytorch(tiny_model, onnx_file, rgb_images):
    onnx = Predictor.from_onnx(onnx_file, conf_threshold=0.3, num_select=50)
    # The graph fixes the input at 96 x 96, whatever the spec says (as TAO Deploy resizes to the engine).
    assert onnx.preprocessor.input_size == (96, 96) and onnx.backend.kind == "onnx"
    reference = Predictor(TorchBackend(tiny_model, device="cpu", text_pad_to=256),
                          thresholds=Thresholds(conf_threshold=0.3, num_select=50),
                          preprocessor=ImagePreprocessor(input_size=(96, 96)))
    classes = ["red block", "blue block"]
    got, want = onnx.predict(rgb_images, classes), reference.predict(rgb_images, classes)
    assert sum(len(d) for d in want) > 0
    for a, b in zip(got, want):
        assert a.image_size == b.image_size and len(a) == len(b)
        # Same detections up to onnxruntime's ~1e-5 differences (order of equal scores aside).
        ka = sorted(zip(a.labels.tolist(), a.scores.tolist()))
        kb = sorted(zip(b.labels.tolist(), b.scores.tolist()))
        assert [x[0] for x in ka] == [x[0] for x in kb]
        assert torch.allclose(torch.tensor([x[1] for x in ka]), torch.tensor([x[1] for x in kb]), atol=1e-4)


def test_onnx_predictor_refuses_another_input_size(onnx_file):
    with pytest.raises(UserError, match=r"input_size \(64, 64\) differs from the ONNX graph's fixed input \(96, 96\)"):
        Predictor.from_onnx(onnx_file, input_size=(64, 64))
