"""The evaluate and inference actions run an ``.onnx`` file through onnxruntime (images resized to
the graph's fixed size, whatever the spec's input size)."""

from __future__ import annotations

import json

import pytest

from mask_grounding_dino.actions import evaluate, inference
from mask_grounding_dino.config import load_spec


@pytest.fixture(scope="module")
def val_data(tmp_path_factory):
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synth_onnx")
    generate_synthetic_dataset(str(root), SynthConfig(num_train=0, num_val=2, num_vg=0, width=64, height=64,
                                                      extract_images=True, seed=5))
    return root / "val"


def test_evaluate_and_inference_with_onnx(onnx_file, val_data, tmp_path, capsys):
    common = {"results_dir": str(tmp_path), "dataset.workers": 0, "dataset.batch_size": 2}
    cfg = load_spec(overrides={**common, "evaluate.checkpoint": str(onnx_file),
                               "dataset.test_data_sources": {"image_dir": str(val_data / "images.tar.gz"),
                                                             "json_file": str(val_data / "annotations.json")}})
    assert evaluate.run(cfg, progress_bar=False) == 0
    assert (cfg.evaluate.input_height, cfg.evaluate.input_width) == (96, 96)     # taken from the graph
    assert len(json.load(open(tmp_path / "evaluate" / "latest_results.json"))) == 24
    detailed = json.load(open(tmp_path / "evaluate" / "detailed_results_annotations.json"))
    assert detailed["backend"].startswith(f"ONNX model {onnx_file} (96x96, dynamic batch)")

    cfg = load_spec(overrides={**common, "inference.checkpoint": str(onnx_file), "inference.conf_threshold": 0.0,
                               "dataset.infer_data_sources": {"image_dir": str(val_data / "images"),
                                                              "captions": ["red circle", "blue square"]}})
    assert inference.run(cfg, progress_bar=False) == 0
    # The spec's 960 x 544 default gives way to the graph's input, with a note.
    assert "replaced by the ONNX graph's fixed input 96x96" in capsys.readouterr().out
    results = json.load(open(tmp_path / "inference" / "results.json"))
    assert results and {r["category"] for r in results} <= {"red circle", "blue square"}
    assert {tuple(r["segmentation"]["size"]) for r in results} == {(64, 64)}         # original image size
