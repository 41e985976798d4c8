"""The CPU INT8 calibration's session order (quantize/cpu_int8.py ``lean_calibration_sessions``).

onnxruntime's calibrator, run in its default order, kept every measured tensor of a Swin-T
800x1333 image alive (> 13 GB for one image); the context runs it priority-based (6.0 GB). Here,
on a small real graph through onnxruntime's own calibrator: the session really gets that order,
the ranges are those of the default order, and onnxruntime's factory is back afterwards, also
after an error.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import create_calibrator
from onnxruntime.quantization.calibrate import CalibraterBase, CalibrationMethod

from graph_helpers import FeedReader, save_graph
from mask_grounding_dino.quantize.cpu_int8 import lean_calibration_sessions


def _graph(path) -> None:
    """x [1, 8] -> MatMul -> Relu -> MatMul -> y: two MatMuls whose inputs get ranges."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    save_graph(path, nodes, [w1, w2], [1, 8], [1, 4])


def _ranges(model_path, folder, method) -> tuple[dict, ort.InferenceSession]:
    calibrator = create_calibrator(str(model_path), ["MatMul"], augmented_model_path=str(folder / "aug.onnx"),
                                   calibrate_method=method)
    calibrator.collect_data(FeedReader(4, (1, 8)))
    data = calibrator.compute_data()
    ranges = {name: tuple(tuple(np.asarray(v, dtype=np.float64).ravel().tolist()) for v in data[name].range_value)
              for name in data}
    return ranges, calibrator.infer_session


@pytest.mark.parametrize("method", [CalibrationMethod.MinMax, CalibrationMethod.Entropy])
def test_calibration_runs_priority_based_with_the_same_ranges(tmp_path, method):
    model = tmp_path / "g.onnx"
    _graph(model)
    (tmp_path / "default").mkdir()
    (tmp_path / "lean").mkdir()
    original = CalibraterBase.create_inference_session
    default, default_session = _ranges(model, tmp_path / "default", method)
    with lean_calibration_sessions():
        lean, lean_session = _ranges(model, tmp_path / "lean", method)
    assert CalibraterBase.create_inference_session is original
    assert lean_session.get_session_options().execution_order == ort.ExecutionOrder.PRIORITY_BASED
    assert default_session.get_session_options().execution_order == ort.ExecutionOrder.DEFAULT
    assert {"x", "r"} <= set(lean) and lean == default      # min/max (and histograms) do not depend on order


def test_the_factory_is_restored_after_an_error():
    original = CalibraterBase.create_inference_session
    with pytest.raises(RuntimeError, match="calibration failed"):
        with lean_calibration_sessions():
            assert CalibraterBase.create_inference_session is not original
            raise RuntimeError("calibration failed")
    assert CalibraterBase.create_inference_session is original
