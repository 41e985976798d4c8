"""Bad quantize requests: one clear line, exit code 2, nothing half-written."""

from __future__ import annotations

import os
import sys

import pytest

from mask_grounding_dino import cli
from mask_grounding_dino.actions import quantize as quantize_action
from mask_grounding_dino.errors import UserError


def _cli(spec, capsys, *overrides) -> list[str]:
    """Run the quantize action through the CLI entry (spec -> YAML dict overrides) and return stderr lines."""
    from mask_grounding_dino.config import spec_to_dict

    path = os.path.join(spec.quantize.results_dir + "_spec.yaml")
    import yaml

    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec_to_dict(spec), handle)
    code = cli.main(["quantize", "-e", path, *overrides])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    return lines


def test_a_pth_given_to_modelopt_onnx(quant_spec, capsys):
    lines = _cli(quant_spec(), capsys, "quantize.backend=modelopt.onnx", "quantize.mode=static_ptq")
    assert len(lines) == 1
    assert "quantize.model_path" in lines[0] and "is not an .onnx file; backend modelopt.onnx" in lines[0]


def test_an_onnx_given_to_a_pytorch_backend(quant_spec, capsys, tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    lines = _cli(quant_spec(), capsys, f"quantize.model_path={onnx_file}")
    assert lines == [f"error: quantize.model_path: '{onnx_file}' is an ONNX file; backend torchao quantises a .pth "
                     "checkpoint (use backend modelopt.onnx for .onnx files)"]


@pytest.mark.parametrize("algorithm, expected", [
    ("kl", "quantize.algorithm"),                   # not in TAO's enum: the spec loader names the key
    ("awq_lite", "is an int4 weight method"),
])
def test_unknown_or_unsuitable_algorithm(quant_spec, capsys, algorithm, expected):
    lines = _cli(quant_spec(), capsys, "quantize.backend=modelopt.pytorch", "quantize.mode=static_ptq",
                 f"quantize.algorithm={algorithm}")
    assert len(lines) == 1 and expected in lines[0]


def test_static_ptq_without_calibration_source(quant_spec, capsys):
    lines = _cli(quant_spec(), capsys, "quantize.backend=modelopt.pytorch", "quantize.mode=static_ptq",
                 "dataset.quant_calibration_data_sources.json_file=", "dataset.quant_calibration_data_sources.image_dir=")
    assert len(lines) == 1
    assert lines[0].startswith("error: dataset.quant_calibration_data_sources.image_dir: required for "
                               "modelopt.pytorch (static INT8 calibration)")


def test_cpu_target_with_a_tensorrt_backend(quant_spec, capsys):
    lines = _cli(quant_spec(), capsys, "quantize.target=cpu", "quantize.backend=modelopt.pytorch",
                 "quantize.mode=static_ptq")
    assert len(lines) == 1 and "quantize.target: cpu builds onnxruntime's INT8 graph" in lines[0]


def test_missing_optional_library(quant_spec, capsys, monkeypatch):
    # What an installation without the [quantize] extra sees: the import of ModelOpt fails.
    monkeypatch.setitem(sys.modules, "modelopt.torch.quantization", None)
    lines = _cli(quant_spec(), capsys, "quantize.backend=modelopt.pytorch", "quantize.mode=static_ptq")
    assert len(lines) == 1
    assert "quantize.backend modelopt.pytorch needs the optional library" in lines[0]
    assert 'pip install -e ".[quantize]"' in lines[0]


def test_missing_model_file_writes_no_results_folder(quant_spec, capsys, tmp_path):
    spec = quant_spec({"quantize.model_path": str(tmp_path / "nope.pth")})
    lines = _cli(spec, capsys)
    assert lines == [f"error: quantize.model_path: '{tmp_path / 'nope.pth'}' does not exist"]
    assert not os.path.exists(spec.quantize.results_dir)


@pytest.mark.slow
def test_a_failed_quantize_leaves_no_file(quant_spec, tmp_path):
    """Calibration fails half-way (an image is missing): no quantised file, no temporary left over."""
    import shutil
    import tarfile

    spec = quant_spec({"quantize.backend": "modelopt.pytorch", "quantize.mode": "static_ptq", "quantize.report": False})
    source = spec.dataset.quant_calibration_data_sources
    folder = tmp_path / "images"
    with tarfile.open(source.image_dir) as archive:
        archive.extractall(folder, filter="data")
    first = sorted(p for p in folder.rglob("*") if p.is_file())[-1]
    first.unlink()                                           # the last calibration image is gone
    spec.dataset.quant_calibration_data_sources.image_dir = str(folder)
    spec.quantize.num_calibration_images = 100
    with pytest.raises(UserError) as failure:
        quantize_action.run(spec)
    assert first.name in failure.value.problems[0]
    left = sorted(os.listdir(spec.quantize.results_dir))
    assert left == ["quantize_spec.yaml"], left
    shutil.rmtree(folder)


def test_cpu_target_after_modelopt_patched_the_calibrators(quant_spec, capsys, tmp_path):
    """ModelOpt's ONNX quantisation replaces onnxruntime's MinMaxCalibrater methods for the whole process
    (its ``ort_patching``); the CPU INT8 path then stops with one line instead of a deep onnxruntime error,
    and writes nothing."""
    from modelopt.onnx.quantization import ort_patching
    from onnxruntime.quantization.calibrate import MinMaxCalibrater

    saved = {name: getattr(MinMaxCalibrater, name) for name in ("augment_graph", "collect_data", "compute_data",
                                                                 "merge_range")}
    try:
        MinMaxCalibrater.collect_data = ort_patching._collect_data_minmax_calibrator   # what ModelOpt installs
        lines = _cli(quant_spec({"quantize.target": "cpu", "quantize.results_dir": str(tmp_path / "q")}), capsys)
    finally:
        for name, method in saved.items():
            setattr(MinMaxCalibrater, name, method)
    assert len(lines) == 1 and "already ran ModelOpt's ONNX quantisation" in lines[0]
    assert not (tmp_path / "q" / "quantized_model_cpu_int8.onnx").exists()
