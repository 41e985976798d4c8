"""The quantize recipe: check -> load -> choose layers -> calibrate + quantise -> save -> report."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import torch

from ..config import spec_to_dict
from .errors import QuantizeError
from .layers import LayerPlan, model_layers, plan_layers
from .request import Request, check_request
from ..utils.log import get_logger

log = get_logger(__name__)


@dataclass
class QuantizeResult:
    request: Request
    output: str
    plan: LayerPlan
    details: dict = field(default_factory=dict)
    report: dict | None = None
    report_paths: dict | None = None


def _supported(path: str) -> tuple[str, ...]:
    from . import cpu_int8, modelopt_torch, torchao_backend

    return {"torchao": torchao_backend.SUPPORTED, "modelopt.pytorch": modelopt_torch.SUPPORTED,
            "modelopt.onnx": ("Linear", "Conv2d"), "cpu": cpu_int8.SUPPORTED}[path]


def _calibration_device(cfg) -> torch.device:
    wanted = str(cfg.quantize.device)
    if wanted.startswith("cuda") and torch.cuda.is_available():
        return torch.device(wanted)
    if wanted != "cpu":
        log.info(f"note: quantize.device {wanted} is not available here; calibrating on the CPU")
    return torch.device("cpu")


def _load(request: Request, cfg):
    """(float model on the CPU, the spec to record in the output)."""
    from ..deploy.loading import load_torch_model
    from .loading import read_model_file

    raw = read_model_file(request.model_path)
    if getattr(raw, "backend", None):
        raise QuantizeError(f"quantize.model_path: '{request.model_path}' is already quantised ({raw.backend}); "
                            "give the float checkpoint it came from")
    loaded = load_torch_model(request.model_path, cfg.model, key="quantize.model_path", raw=raw)
    spec = raw.metadata.get("spec") or spec_to_dict(cfg)
    return loaded.model.eval(), spec


def quantize(cfg, results_dir: str) -> QuantizeResult:
    """Run ``cfg.quantize`` and write its file into ``results_dir``; the float model is measured too when
    ``quantize.report`` is on."""
    from .calibration import CalibrationData

    request = check_request(cfg)
    q = cfg.quantize
    output = os.path.join(results_dir, request.output_name)
    if request.is_onnx:
        return _quantize_onnx(cfg, request, output)
    model, spec = _load(request, cfg)
    layers = model_layers(model)
    plan = plan_layers(layers, layers=q.layers, skip_names=q.skip_names,
                       mode="static_ptq" if request.static else "weight_only_ptq",
                       supported=_supported(request.path), backend=request.path)
    if request.path == "torchao":
        from .torchao_backend import narrow_plan

        narrow_plan(model, plan)
    if not plan.chosen:
        raise QuantizeError("quantize.layers: the rules select no layer this backend can quantise; nothing to do "
                            "(patterns match module paths such as 'transformer.encoder.*' or class names such "
                            "as 'Linear')")
    target = copy.deepcopy(model)
    details: dict = {}
    if request.path == "torchao":
        from .artifact import build_payload, write_payload
        from .torchao_backend import quantize_weights

        quantize_weights(target, plan)
        write_payload(build_payload(backend="torchao", mode=q.mode, model=target, state_dict=target.state_dict(),
                                    plan=plan.as_dict(), spec=spec, source=request.model_path), output)
    elif request.path == "modelopt.pytorch":
        from .artifact import build_payload, write_payload
        from .calibration import run_calibration
        from .modelopt_torch import input_ranges, modelopt_state, quantize_static

        device = _calibration_device(cfg)
        data = CalibrationData(cfg, _text_processor(model))
        target = quantize_static(target.to(device), plan, lambda m: run_calibration(m, data), q.algorithm).cpu()
        details["calibration_images"] = data.count
        details["input_ranges"] = input_ranges(target)
        write_payload(build_payload(backend="modelopt.pytorch", mode=q.mode, model=target,
                                    state_dict=target.state_dict(), plan=plan.as_dict(), spec=spec,
                                    source=request.model_path, extra={"modelopt_state": modelopt_state(target)}),
                      output)
    else:   # cpu
        from .cpu_int8 import quantize_for_cpu

        size = _cpu_input_size(cfg, model)
        data = CalibrationData(cfg, _text_processor(model), input_size=size, size_divisibility=1)
        details = quantize_for_cpu(model, plan, data, output, input_size=size, algorithm=q.algorithm,
                                   all_layers=[name for name, _, _ in layers])
        details["calibration_images"] = data.count
    return QuantizeResult(request, output, plan, details)


def _text_processor(model):
    from ..text import TextProcessor

    build = getattr(model, "build_config", {}) or {}
    return TextProcessor(str(build.get("text_encoder_type", "bert-base-uncased")), int(model.max_text_len))


def _cpu_input_size(cfg, model) -> tuple[int, int]:
    """The CPU graph's fixed (H, W): ``evaluate.input_height/width`` when set, else the evaluation size of the
    first calibration image."""
    from .calibration import CalibrationData

    if cfg.evaluate.input_width and cfg.evaluate.input_height:
        return int(cfg.evaluate.input_height), int(cfg.evaluate.input_width)
    return CalibrationData(cfg, _text_processor(model), limit=1).first_size()


def _quantize_onnx(cfg, request: Request, output: str) -> QuantizeResult:
    """modelopt.onnx, or target cpu from an ``.onnx`` file."""
    import onnx

    from ..text import TextProcessor
    from .calibration import CalibrationData
    from .modelopt_onnx import graph_input, quantize_onnx
    from .onnx_nodes import graph_layers, read_metadata

    q = cfg.quantize
    size, text_len = graph_input(request.model_path)
    meta = read_metadata(request.model_path)
    layers, owner = graph_layers(onnx.load(request.model_path, load_external_data=False).graph)
    plan = plan_layers(layers, layers=q.layers, skip_names=q.skip_names, mode="static_ptq",
                       supported=("Linear", "Conv2d"), backend=request.path)
    if not plan.chosen:
        raise QuantizeError("quantize.layers: the rules select no layer of the ONNX graph; nothing to do")
    tp = TextProcessor(meta.get("text_encoder_type") or cfg.model.text_encoder_type, text_len)
    data = CalibrationData(cfg, tp, input_size=size, size_divisibility=1)
    if request.path == "modelopt.onnx":
        details = quantize_onnx(request.model_path, plan, owner, data, output, algorithm=q.algorithm,
                                text_len=text_len, options=dict(q.backend_kwargs or {}), device=str(q.device),
                                metadata=meta)
    else:
        from .cpu_int8 import quantize_graph

        details = quantize_graph(request.model_path, plan, owner, data, output, algorithm=q.algorithm,
                                 text_len=text_len, metadata=meta)
    details["calibration_images"] = data.count
    return QuantizeResult(request, output, plan, details)
