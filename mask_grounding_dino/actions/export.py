"""``mask_grounding_dino export -e spec.yaml``: write the model as ONNX with TAO's interface.

spec -> model (``export.checkpoint``, any checkpoint layout; the architecture from the
checkpoint or the spec's ``model`` section) -> ONNX (``export.onnx_file``, default
``<results dir>/model.onnx``; ``input_width`` x ``input_height``, TAO's 960 x 544;
``opset_version``; ``batch_size`` -1 = dynamic) -> onnxruntime check against PyTorch
(the max abs difference per output is printed and kept in ``export_check.json``) ->
optional DeepStream ``nvdsinfer_config.yaml`` next to the ONNX file
(``serialize_nvdsinfer``; keys in ``deploy/nvdsinfer.py``).

Inputs: ``inputs, input_ids, attention_mask, position_ids, token_type_ids, text_token_mask``;
outputs ``pred_logits, pred_boxes, pred_masks`` (+ ``no_targets, union_mask_logits`` with the
region head). The text stays an input, so the exported model keeps its open vocabulary.
``format: xdl`` is not supported. Tracing runs on ``cuda:<gpu_id>`` when a GPU is there and
``on_cpu`` is false, else on the CPU.
"""

from __future__ import annotations

import os

import torch

from ..config import is_unset
from ..deploy.devices import resolve_device
from ..deploy.loading import is_onnx_path, load_torch_model
from ..deploy.nvdsinfer import write_nvdsinfer_config
from ..deploy.tensorrt import is_engine_path
from ..errors import SpecError
from ..utils.atomic import atomic_write_json
from .common import action_results_dir, print_table, save_resolved_spec
from ..utils.log import get_logger

log = get_logger(__name__)

#: ``mask_grounding_dino export --help`` (read from this file by the CLI without importing it).
HELP = {
    "summary": "write the model as ONNX with TAO's inputs and outputs",
    "description": "Write the model as ONNX with TAO's inputs and outputs (the text stays an input, so the "
                   "exported model keeps its open vocabulary), checked against PyTorch in onnxruntime.",
    "keys": [
        ("export.checkpoint", "the model: a .pth checkpoint (any layout), a Hugging Face folder or hub id"),
        ("export.onnx_file", "the ONNX file to write (default: <results dir>/model.onnx)"),
        ("export.input_width", "image width of the graph (with export.input_height; TAO: 960 x 544)"),
        ("export.batch_size", "-1 (default): dynamic batch"),
        ("export.on_cpu", "trace on the CPU even when a GPU is there"),
    ],
    "examples": [
        "mask_grounding_dino export -e spec.yaml export.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth "
        "export.onnx_file=runs/exp1/export/model.onnx",
        "mask_grounding_dino export -e spec.yaml export.checkpoint=runs/exp1/train/mask_gdino_model_latest.pth "
        "export.onnx_file=runs/exp1/export/model_640.onnx export.input_width=640 export.input_height=384",
    ],
}


def _check_request(cfg) -> None:
    section = cfg.export
    problems = []
    if str(section.format).lower() != "onnx":
        problems.append(f"export.format: '{section.format}' is not supported by this version; use onnx")
    if is_unset(section.checkpoint):
        problems.append("export.checkpoint: required for export; give the trained checkpoint (.pth)")
    elif is_onnx_path(section.checkpoint) or is_engine_path(section.checkpoint):
        problems.append(f"export.checkpoint: '{section.checkpoint}' is already an exported model; give the "
                        "PyTorch checkpoint (.pth) it came from")
    if problems:
        raise SpecError(problems)


def onnx_path(cfg, results_dir: str) -> str:
    """``export.onnx_file``, or ``<results dir>/model.onnx`` when unset."""
    value = cfg.export.onnx_file
    path = os.path.join(results_dir, "model.onnx") if is_unset(value) else str(value)
    if not path.lower().endswith(".onnx"):
        raise SpecError(f"export.onnx_file: '{path}' must end with .onnx")
    return path


def run(cfg) -> int:
    from ..export import ExportOptions, check_onnx, export_with_options

    _check_request(cfg)
    section = cfg.export
    options = ExportOptions.from_config(section)
    results_dir = action_results_dir(cfg, "export")
    path = onnx_path(cfg, results_dir)
    device = torch.device("cpu") if section.on_cpu else resolve_device(None, [section.gpu_id], key="export.gpu_id")
    loaded = load_torch_model(section.checkpoint, cfg.model, key="export.checkpoint")
    model = loaded.model.to(device).eval()
    cfg.export.onnx_file = path
    save_resolved_spec(cfg, results_dir, "export")

    result = export_with_options(model, path, options)
    log.info(result.describe())
    report = check_onnx(model, path, batch_sizes=(1, 2))
    log.info(report.summary())
    log.info(f"max abs difference onnxruntime vs PyTorch: {report.max_abs_diff:.3g} "
             f"(tolerance {report.atol:g} + {report.rtol:g} x |value|)")
    if not report.ok:
        log.warning("the ONNX outputs differ from PyTorch beyond the tolerance; check the summary above")
    check_file = os.path.join(results_dir, "export_check.json")
    atomic_write_json(check_file, {
        "onnx_file": path, "ok": report.ok, "atol": report.atol, "rtol": report.rtol, "max_abs_diff": report.max_abs_diff,
        "outputs": [{"batch": d.batch, "name": d.name, "shape": list(d.shape), "max_abs_diff": d.max_abs_diff,
                     "nonfinite_match": d.nonfinite_match} for d in report.diffs]})

    rows = [("onnx file", path), ("inputs", ", ".join(result.input_names)),
            ("outputs", ", ".join(result.output_names)),
            ("image", f"{result.input_size[0]}x{result.input_size[1]} (HxW)"),
            ("batch", "dynamic" if result.batch_size is None else str(result.batch_size)),
            ("opset", str(result.opset)), ("max abs diff", f"{report.max_abs_diff:.3g}"),
            ("check", check_file)]
    if section.serialize_nvdsinfer:
        aug = cfg.dataset.augmentation
        nvds = write_nvdsinfer_config(path, input_size=result.input_size, output_names=result.output_names,
                                      batch_size=result.batch_size, mean=aug.input_mean, std=aug.input_std,
                                      conf_threshold=cfg.inference.conf_threshold, num_select=cfg.model.num_select,
                                      gpu_id=section.gpu_id)
        rows.append(("deepstream config", str(nvds)))
    print_table("Export finished", rows)
    return 0
