"""Fixtures for the quantize tests: a tiny model (1-layer 32-wide BERT, narrow ResNet), the
built-in synthetic data in TAO's layout (ODVG train = calibration source, COCO val), and a
spec builder. Everything at 64 px on one thread."""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

from mask_grounding_dino.config import load_spec

# Shared builders live beside the engine tests and in this folder (graph_helpers); the suite runs
# with --import-mode=importlib, so neither folder is on sys.path by itself.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from engine_helpers import make_dataset, make_text_encoder, tiny_spec  # noqa: E402


@pytest.fixture(scope="session")
def quant_setup(tmp_path_factory):
    """(data folder, text encoder folder, float checkpoint path) shared by the session."""
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO

    root = tmp_path_factory.mktemp("quant")
    data = make_dataset(root / "data", num_train=6, num_val=3)
    encoder = make_text_encoder(root / "bert")
    spec = load_spec(base=tiny_spec(root / "data", encoder, root / "unused"))
    torch.manual_seed(0)
    model = MaskGroundingDINO.from_config(spec.model)
    path = root / "float.pth"
    save_checkpoint(model, path)
    return root / "data", encoder, path


@pytest.fixture
def quant_spec(quant_setup, tmp_path):
    """``quant_spec(**dotted_overrides)`` -> a loaded spec quantising the tiny float checkpoint."""
    data, encoder, checkpoint = quant_setup

    def build(overrides: dict | None = None):
        base = tiny_spec(data, encoder, tmp_path / "results")
        base["dataset"]["quant_calibration_data_sources"] = dict(base["dataset"]["train_data_sources"][0])
        base["dataset"]["train_data_sources"] = []
        base["dataset"]["batch_size"] = 2
        base["model"]["dropout_ratio"] = 0.0
        extra = {"quantize.model_path": str(checkpoint), "quantize.results_dir": str(tmp_path / "quantized"),
                 "quantize.device": "cpu", "quantize.num_calibration_images": 4}
        extra.update(overrides or {})
        return load_spec(base=base, overrides=extra)

    return build


@pytest.fixture(autouse=True)
def onnxruntime_quantisation_as_shipped():
    """Undo, after each test, ModelOpt's process-wide patches of onnxruntime's quantiser.

    ``modelopt.onnx`` replaces onnxruntime's calibrator and quantiser methods (and its Q/DQ
    registry) every time it quantises, and never puts them back; the patched calibrators record
    no range for graph inputs. A user runs one quantize per process (see ``cpu_int8._check_calibrators``);
    here the tests share one, so each test gets onnxruntime as shipped."""
    from onnxruntime.quantization import calibrate, qdq_quantizer, registry
    from onnxruntime.quantization.base_quantizer import BaseQuantizer

    owners = [calibrate.CalibraterBase, calibrate.MinMaxCalibrater, calibrate.HistogramCalibrater,
              calibrate.HistogramCollector, qdq_quantizer.QDQQuantizer, BaseQuantizer, calibrate]
    saved = [(owner, dict(vars(owner))) for owner in owners]
    registry_saved = dict(registry.QDQRegistry)
    yield
    for owner, attributes in saved:
        for name, value in attributes.items():
            if getattr(owner, name, None) is not value and not name.startswith("__"):
                setattr(owner, name, value)
    registry.QDQRegistry.clear()
    registry.QDQRegistry.update(registry_saved)
