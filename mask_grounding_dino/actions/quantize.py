"""``mask_grounding_dino quantize -e spec.yaml``: post-training quantisation, with a before/after report.

spec -> checks (``mask_grounding_dino/quantize/request.py``: one line per mistake, before any
loading) -> float model (``quantize.model_path``) -> layer plan (``quantize.layers`` /
``skip_names``, or the default set; printed) -> calibration on
``dataset.quant_calibration_data_sources`` with each image's caption (static modes) ->
quantised file in ``quantize.results_dir`` (TAO's names, written atomically) -> report on
``dataset.val_data_sources`` (``quantize.report``): mAP, latency and size before and after.

| ``quantize.*``                         | writes                                   | runs on |
|----------------------------------------|------------------------------------------|---------|
| backend torchao, weight_only_ptq       | ``quantized_model_torchao.pth``          | PyTorch (smaller file) |
| backend modelopt.pytorch, static_ptq   | ``quantized_model_modelopt.pytorch.pth`` | PyTorch fake-quant; export -> Q/DQ ONNX -> TensorRT |
| backend modelopt.onnx, static_ptq      | ``quantized_model.onnx``                 | TensorRT (onnxruntime for checks) |
| target cpu                             | ``quantized_model_cpu_int8.onnx``        | onnxruntime on x86 CPUs, INT8 kernels |

Every output is a model file the ``evaluate``, ``inference`` and ``export`` actions and the
Predictor accept as they accept a checkpoint or an ``.onnx`` file.
"""

from __future__ import annotations

from .common import action_results_dir, print_table, save_resolved_spec
from ..utils.log import get_logger

log = get_logger(__name__)

HELP = {
    "summary": "post-training quantisation (torchao, ModelOpt, CPU INT8) with a before/after report",
    "description": "Quantise a trained model with TAO's backends (torchao weight-only, ModelOpt static int8/fp8 "
                   "for TensorRT) or onnxruntime's static INT8 for x86 CPUs (quantize.target=cpu); static modes "
                   "calibrate on images with their own captions. The float and the quantised model are scored on "
                   "dataset.val_data_sources (mAP, latency, size) in quantize_report.md.",
    "keys": [
        ("quantize.model_path", "the float model: a .pth checkpoint, or an .onnx file for backend modelopt.onnx"),
        ("quantize.backend", "torchao (default, weight-only), modelopt.pytorch or modelopt.onnx (static_ptq)"),
        ("quantize.mode", "weight_only_ptq (torchao) or static_ptq (ModelOpt)"),
        ("quantize.target", "tensorrt (default, TAO's artefacts) or cpu (onnxruntime static INT8 graph)"),
        ("dataset.quant_calibration_data_sources.image_dir", "calibration images of the static modes (ODVG source)"),
        ("dataset.quant_calibration_data_sources.json_file", "their ODVG annotations (each image's caption)"),
        ("quantize.layers", "rules selecting layers (empty: a default set, printed)"),
        ("quantize.results_dir", "where the files go (default: <results_dir>/quantize)"),
    ],
    "examples": [
        "mask_grounding_dino quantize -e spec.yaml quantize.model_path=runs/exp1/train/mask_gdino_model_latest.pth",
        "mask_grounding_dino quantize -e spec.yaml quantize.model_path=runs/exp1/train/mask_gdino_model_latest.pth "
        "quantize.backend=modelopt.pytorch quantize.mode=static_ptq "
        "dataset.quant_calibration_data_sources.image_dir=data/train/images.tar.gz "
        "dataset.quant_calibration_data_sources.json_file=data/train/annotations_odvg.jsonl",
        "mask_grounding_dino quantize -e spec.yaml quantize.model_path=runs/exp1/train/mask_gdino_model_latest.pth "
        "quantize.target=cpu",
        "mask_grounding_dino quantize -e spec.yaml quantize.model_path=runs/exp1/export/model.onnx "
        "quantize.backend=modelopt.onnx quantize.mode=static_ptq",
    ],
}


def _report(cfg, result, results_dir: str):
    from ..deploy.loading import open_backend
    from ..quantize.report import measure, table, write_report

    q = cfg.quantize
    rows = []
    for label, path in (("float", result.request.model_path), ("quantized", result.output)):
        backend = open_backend(path, model_section=cfg.model, device="cpu", key=f"quantize report ({label})",
                               text_encoder_type=cfg.model.text_encoder_type)
        rows.append(measure(cfg, label, path, backend))
        del backend
    context = {"backend": q.backend, "mode": q.mode, "target": q.target, "algorithm": q.algorithm,
               "layer_plan": result.plan.as_dict(), "details": result.details,
               "summary": " ".join(result.plan.summary()[:1])}
    paths = write_report(results_dir, rows, context)
    log.info("\n" + table(rows))
    return paths


def run(cfg) -> int:
    from ..quantize.request import check_request
    from ..quantize.runner import quantize

    check_request(cfg)                                  # every mistake before a results folder appears
    results_dir = action_results_dir(cfg, "quantize")   # quantize.results_dir, else <results_dir>/quantize
    save_resolved_spec(cfg, results_dir, "quantize")
    result = quantize(cfg, results_dir)
    for line in result.plan.summary():
        log.info(line)
    rows = [("path", result.request.path), ("input", result.request.model_path), ("output", result.output)]
    rows += [(key, str(value)) for key, value in result.details.items() if key != "input_ranges"]
    val = cfg.dataset.val_data_sources
    if cfg.quantize.report and val.json_file and val.image_dir:
        paths = _report(cfg, result, results_dir)
        rows += [("report", paths["markdown"])] + ([("plot", paths["plot"])] if "plot" in paths else [])
    elif cfg.quantize.report:
        rows.append(("report", "skipped: dataset.val_data_sources has no json_file/image_dir"))
    print_table("Quantisation finished", rows)
    return 0
