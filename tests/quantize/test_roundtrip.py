"""Each backend's file runs through evaluate, inference and the Predictor like a checkpoint, with the
same metric names and result files; the ModelOpt model's exported Q/DQ graph matches its fake
quantisation; calibration feeds each image's caption, so the fusion layers' text side is calibrated."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch

from mask_grounding_dino.actions import evaluate, export, inference
from mask_grounding_dino.actions import quantize as quantize_action
from mask_grounding_dino.quantize.loading import read_quantized
from mask_grounding_dino.quantize.onnx_session import activation_step

SIDE = 64          # the tiny spec's evaluation size (test_random_resize)
BACKENDS = {
    "torchao": ({}, "quantized_model_torchao.pth"),
    "modelopt.pytorch": ({"quantize.backend": "modelopt.pytorch", "quantize.mode": "static_ptq"},
                         "quantized_model_modelopt.pytorch.pth"),
    "cpu": ({"quantize.target": "cpu"}, "quantized_model_cpu_int8.onnx"),
}


@pytest.fixture(scope="module")
def float_onnx(quant_setup, tmp_path_factory):
    """The float checkpoint exported at 64 x 64: modelopt.onnx's input."""
    from mask_grounding_dino.export import export_onnx
    from mask_grounding_dino.deploy.loading import load_torch_model

    _, _, checkpoint = quant_setup
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(load_torch_model(checkpoint).model.eval(), path, input_size=(SIDE, SIDE))
    return path


def _quantize(quant_spec, name, float_onnx=None):
    if name == "modelopt.onnx":
        overrides, file_name = ({"quantize.backend": "modelopt.onnx", "quantize.mode": "static_ptq",
                                 "quantize.model_path": str(float_onnx),
                                 # fp32 elsewhere: onnxruntime's CPU provider lacks float16 kernels for some ops
                                 "quantize.backend_kwargs": {"high_precision_dtype": "fp32"}},
                                "quantized_model.onnx")
    else:
        overrides, file_name = BACKENDS[name]
    spec = quant_spec({**overrides, "quantize.report": False})
    assert quantize_action.run(spec) == 0
    path = os.path.join(spec.quantize.results_dir, file_name)
    assert os.path.isfile(path)
    return spec, path


def _evaluate(quant_spec, checkpoint, tmp_path, tag):
    probe = quant_spec()
    spec = quant_spec({"evaluate.checkpoint": str(checkpoint), "evaluate.results_dir": str(tmp_path / f"eval_{tag}"),
                       "dataset.test_data_sources": {"image_dir": probe.dataset.val_data_sources.image_dir,
                                                     "json_file": probe.dataset.val_data_sources.json_file,
                                                     "data_type": "OD"}})
    assert evaluate.run(spec, progress_bar=False) == 0
    with open(tmp_path / f"eval_{tag}" / "latest_results.json") as handle:
        return json.load(handle)


def _is_quantized(name: str, path: str) -> None:
    """The file really holds the backend's quantised form."""
    if name == "torchao":
        from torchao.utils import TorchAOBaseTensor

        state = read_quantized(path).state_dict
        assert sum(isinstance(t, TorchAOBaseTensor) for t in state.values()) > 10
        # The text encoder's Linear layers: one scale per 32 input channels; the others: one per output row.
        text = [k for k in state if k.startswith("bert.encoder.") and k.endswith("dense.weight")]
        assert text and all(tuple(state[k].block_size) == (1, 32) for k in text)
        other = state["transformer.encoder.layers.0.linear1.weight"]
        assert tuple(other.scale.shape) == (other.shape[0], 1)
    elif name == "modelopt.pytorch":
        assert any(k.endswith("input_quantizer._amax") for k in read_quantized(path).state_dict)
    else:
        graph = onnx.load(path).graph
        assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 10
        if name == "cpu":
            # A quantised MatMul (its weight dequantised) keeps a float output: onnxruntime fuses it into
            # MatMulIntegerToFloat instead of QLinearMatMul + DequantizeLinear + one more 8-bit rounding.
            made = {n.output[0]: n.op_type for n in graph.node}
            requantised = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
            quantised = [n for n in graph.node if n.op_type == "MatMul" and made.get(n.input[1]) == "DequantizeLinear"]
            assert quantised and not any(n.output[0] in requantised for n in quantised)


@pytest.mark.slow
@pytest.mark.parametrize("name", [*BACKENDS, "modelopt.onnx"])
def test_each_backend_file_runs_through_evaluate_and_inference(name, quant_spec, quant_setup, float_onnx,
                                                               tmp_path):
    data, _, checkpoint = quant_setup
    _, path = _quantize(quant_spec, name, float_onnx)
    _is_quantized(name, path)

    reference = _evaluate(quant_spec, float_onnx if path.endswith(".onnx") else checkpoint, tmp_path, "float")
    metrics = _evaluate(quant_spec, path, tmp_path, "quantized")
    assert set(metrics) == set(reference) and "[bbox] test_mAP@50" in metrics and "[segm] test_mAP@50" in metrics
    assert all(np.isfinite(v) for v in metrics.values())

    out = tmp_path / "infer"
    spec = quant_spec({"inference.checkpoint": path, "inference.results_dir": str(out),
                       "inference.input_width": SIDE, "inference.input_height": SIDE, "inference.conf_threshold": 0.0,
                       "dataset.infer_data_sources": {"image_dir": str(data / "val" / "images.tar.gz"),
                                                      "captions": [str(data / "val" / "label_map.txt")],
                                                      "data_type": "OD"}})
    assert inference.run(spec, progress_bar=False) == 0
    index = json.load(open(out / "results_index.json"))
    results = json.load(open(out / "results.json"))
    assert len(index["images"]) == 3
    assert results and {r["image_id"] for r in results} <= {i["id"] for i in index["images"]}
    assert all("segmentation" in r for r in results)


@pytest.mark.slow
def test_predictor_loads_a_quantized_file_without_a_spec(quant_spec):
    from PIL import Image

    from mask_grounding_dino.api import Predictor

    _, path = _quantize(quant_spec, "torchao")
    predictor = Predictor.from_checkpoint(path, device="cpu")
    image = Image.fromarray(np.full((SIDE, SIDE, 3), 128, np.uint8))
    detections = predictor.predict([image], ["red circle", "blue square"])
    assert len(detections) == 1 and detections[0].boxes.shape[1] == 4


@pytest.mark.slow
def test_exported_modelopt_model_is_standard_qdq_matching_fake_quant(quant_spec, tmp_path, capsys):
    spec, path = _quantize(quant_spec, "modelopt.pytorch")
    onnx_file = tmp_path / "qdq.onnx"
    export_spec = quant_spec({"export.checkpoint": path, "export.onnx_file": str(onnx_file), "export.on_cpu": True,
                              "export.input_width": SIDE, "export.input_height": SIDE,
                              "results_dir": str(tmp_path / "export_results")})
    assert export.run(export_spec) == 0
    check = json.load(open(tmp_path / "export_results" / "export" / "export_check.json"))
    # onnxruntime runs the Q/DQ pairs as written (dequantise, then float ops), the arithmetic of ModelOpt's
    # fake quantisation; 1e-2: a value within float rounding of a rounding boundary may land one int8 step
    # away (measured: 2e-3 at most, on the region head's mask logits; 5e-6 on logits and boxes). The
    # fused integer kernels onnxruntime would otherwise pick moved the logits by up to 7.
    assert check["max_abs_diff"] < 1e-2, capsys.readouterr().out
    # The export action's own check allows exactly that step: its tolerance is one step of the graph's
    # coarsest activation quantiser (above the float default 1e-3), so it passes the Q/DQ graph.
    step = activation_step(onnx_file)
    assert step > 1e-3 and check["atol"] == pytest.approx(step) and check["ok"], capsys.readouterr().out
    graph = onnx.load(str(onnx_file)).graph
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    consts.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    quant = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    layers = read_quantized(path).payload["layer_plan"]
    assert len(quant) == 2 * len(layers["chosen"])                 # one for the weights, one for the input
    zero_points = [consts[n.input[2]] for n in quant]
    assert all(z.dtype == np.int8 and not z.any() for z in zero_points)   # symmetric int8, zero point 0
    assert {n.op_type for n in graph.node} <= _STANDARD_OPS


#: ONNX standard operators TensorRT parses natively (no plugin).
_STANDARD_OPS = {schema.name for schema in onnx.defs.get_all_schemas() if schema.domain == ""}


@pytest.mark.slow
def test_calibration_feeds_each_image_its_caption(quant_spec):
    from mask_grounding_dino.quantize.calibration import CalibrationData
    from mask_grounding_dino.quantize.runner import quantize
    from mask_grounding_dino.text import TextProcessor

    spec = quant_spec({"quantize.backend": "modelopt.pytorch", "quantize.mode": "static_ptq"})
    data = CalibrationData(spec, TextProcessor(spec.model.text_encoder_type, spec.model.max_text_len))
    batch = next(iter(data))
    labels = json.load(open(spec.dataset.quant_calibration_data_sources.label_map)).values()
    assert all(any(label in caption for label in labels) for caption in batch.captions)
    assert int(batch.text.attention_mask.sum()) > 2 * len(batch.captions)     # more than [CLS] [SEP]

    os.makedirs(spec.quantize.results_dir, exist_ok=True)
    ranges = quantize(spec, spec.quantize.results_dir).details["input_ranges"]
    text_side = [n for n in ranges if "fusion_layers" in n and n.endswith(("l_proj", "values_l_proj"))]
    assert text_side and all(ranges[n] > 0 for n in text_side)       # text features reached the fusion layer
    assert all(np.isfinite(v) and v > 0 for v in ranges.values())
