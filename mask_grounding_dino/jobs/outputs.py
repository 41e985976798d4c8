"""A finished job's key metrics and files, read from what its action wrote.

``outputs["model"]`` is the file a child job receives as ``parent_model``:

  train           the checkpoint with the best ``[bbox] val_mAP@50`` (see artifacts.best_checkpoint)
  export          the ONNX file it wrote (``export.onnx_file`` as run)
  gen_trt_engine  the engine it wrote (``gen_trt_engine.trt_engine`` as run)
  quantize        the quantized model it wrote (TAO's file names, newest first)

Metrics: train, the best validation's; evaluate, ``latest_results.json``; export, the
onnxruntime check; inference, the number of results.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import is_unset
from ..data import fileio
from . import artifacts

#: Files TAO's quantize back-ends write (torchao, modelopt.pytorch, modelopt.onnx).
QUANTIZED_NAMES = ("quantized_model.onnx", "quantized_model_torchao.pth", "quantized_model_modelopt.pytorch.pth")


def _first_existing(folders: list[str], name: str) -> str | None:
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def _folder_with(folders: list[str], name: str) -> str | None:
    path = _first_existing(folders, name)
    return os.path.dirname(path) if path else None


def _numbers(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_json(path: str | None) -> Any:
    if not path:
        return None
    try:
        return fileio.read_json(path)
    except Exception:  # noqa: BLE001 - a missing or damaged report leaves the metrics empty, it is no failure
        return None


def _automl(job_dir: str) -> tuple[dict, dict] | None:
    """An AutoML train job: its best trial's checkpoint and value (``automl/report.json``)."""
    path = os.path.join(job_dir, "automl", "report.json")
    report = _read_json(path) if os.path.isfile(path) else None
    if not isinstance(report, dict):
        return None
    outputs: dict[str, Any] = {"folder": os.path.dirname(path), "report.json": path}
    best = report.get("best") or {}
    metrics = {"trials_complete": report.get("counts", {}).get("COMPLETE", 0)}
    if best.get("checkpoint"):
        outputs.update(model=best["checkpoint"], model_note=f"AutoML best trial {best.get('id')}",
                       best_spec=best.get("spec"))
        metrics.update({"best_trial": best.get("id"), "best_epoch": best.get("epoch"),
                        str(report.get("metric")): best.get("value")})
    return metrics, outputs


def _train(job_dir: str, cfg) -> tuple[dict, dict]:
    automl = _automl(job_dir)
    if automl is not None:
        return automl
    folder = artifacts.train_folder(job_dir, cfg.train.results_dir or None)
    if folder is None:
        return {}, {}
    outputs: dict[str, Any] = {"folder": folder, "latest": artifacts.latest_checkpoint(folder)}
    metrics: dict[str, Any] = {}
    best = artifacts.best_checkpoint(folder)
    if best is not None:
        outputs.update(model=best.path, model_note=best.note)
        if best.record is not None:
            metrics = {"best_epoch": best.epoch, **_numbers(best.record["metrics"])}
    records = artifacts.validation_records(folder)
    if records:
        metrics["last_epoch"] = records[-1]["epoch"]
        metrics.update({f"last {k}": v for k, v in _numbers(records[-1]["metrics"]).items()
                        if k == artifacts.MONITOR})
    for name in ("status.json", "val_metrics.jsonl", "plots"):
        if os.path.exists(os.path.join(folder, name)):
            outputs[name] = os.path.join(folder, name)
    return metrics, outputs


def _evaluate(job_dir: str, cfg) -> tuple[dict, dict]:
    folders = artifacts.action_folders(job_dir, "evaluate", cfg.evaluate.results_dir or None)
    latest = _first_existing(folders, "latest_results.json")
    outputs = {"folder": os.path.dirname(latest)} if latest else {}
    if latest:
        outputs["latest_results.json"] = latest
        folder = os.path.dirname(latest)
        outputs.update({n: os.path.join(folder, n) for n in sorted(os.listdir(folder))
                        if n.startswith(("evaluation_summary_", "key_metrics_", "detailed_results_"))})
    return _numbers(_read_json(latest)), outputs


def _inference(job_dir: str, cfg) -> tuple[dict, dict]:
    folders = artifacts.action_folders(job_dir, "inference", cfg.inference.results_dir or None)
    folder = _folder_with(folders, "results.json")
    if folder is None:
        return {}, {}
    names = ("results.json", "results_index.json", "images_annotated", "labels")
    outputs = {"folder": folder}
    outputs.update({n: os.path.join(folder, n) for n in names if os.path.exists(os.path.join(folder, n))})
    results = _read_json(os.path.join(folder, "results.json"))
    index = _read_json(os.path.join(folder, "results_index.json"))
    metrics = {}
    if isinstance(index, dict) and isinstance(index.get("images"), list):
        metrics["images"] = len(index["images"])
    if isinstance(results, list):
        metrics["results"] = len(results)
        metrics["images_with_results"] = len({r.get("image_id") for r in results if isinstance(r, dict)})
    return metrics, outputs


def _export(job_dir: str, cfg) -> tuple[dict, dict]:
    outputs: dict[str, Any] = {}
    onnx = str(cfg.export.onnx_file)
    if not is_unset(onnx) and fileio.exists(onnx):
        outputs["model"] = onnx
    folders = artifacts.action_folders(job_dir, "export", cfg.export.results_dir or None)
    check_path = _first_existing(folders, "export_check.json")
    check = _read_json(check_path)
    metrics = {}
    if isinstance(check, dict):
        outputs["export_check.json"] = check_path
        metrics = {"max_abs_diff": check.get("max_abs_diff"), "check_ok": bool(check.get("ok"))}
    return metrics, outputs


def _gen_trt_engine(job_dir: str, cfg) -> tuple[dict, dict]:
    engine = str(cfg.gen_trt_engine.trt_engine)
    return {}, ({"model": engine} if not is_unset(engine) and fileio.exists(engine) else {})


def _quantize(job_dir: str, cfg) -> tuple[dict, dict]:
    folders = artifacts.action_folders(job_dir, "quantize", cfg.quantize.results_dir or None)
    found = [p for name in QUANTIZED_NAMES if (p := _first_existing(folders, name))]
    if not found:
        return {}, {}
    return {}, {"model": max(found, key=os.path.getmtime), "folder": os.path.dirname(found[0])}


_COLLECTORS = {"train": _train, "evaluate": _evaluate, "inference": _inference, "export": _export,
               "gen_trt_engine": _gen_trt_engine, "quantize": _quantize}


def collect(action: str, job_dir: str, cfg) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, outputs) of a job whose action ran with spec ``cfg``."""
    return _COLLECTORS[action](job_dir, cfg)
