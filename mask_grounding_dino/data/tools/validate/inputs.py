"""What to validate: files given on the command line (format detected) or a spec's data sources."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ... import fileio
from ....errors import DataError, UserError
from .report import SourceStats
from .validator import Validator


def validate_path(validator: Validator, path: str, image_dir: str | None, label_map: str | None) -> None:
    """Dispatch on the file: ODVG, inference or RefCOCO-style .jsonl (by the first record's keys), COCO .json
    (an object with "images"), label map (.txt, or any other .json)."""
    lower = path.lower().removesuffix(".gz")
    if lower.endswith(".jsonl"):
        keys = _first_jsonl_keys(path)
        if keys >= {"image_path", "expression"}:
            validator.inference_jsonl(path, image_dir)
        elif keys >= {"sentence", "annotations"}:
            validator.refcoco_jsonl(path, image_dir)
        else:
            validator.odvg(path, image_dir, label_map)
    elif lower.endswith(".json"):
        try:
            data = fileio.read_json(path)
        except DataError as exc:
            validator.report.sources.append(SourceStats(fileio.redact(path), "json"))
            validator.report.add("bad_record", fileio.redact(path), str(exc))
            return
        if isinstance(data, dict) and "images" in data:
            validator.coco(path, image_dir, label_map, raw=data)
        else:
            validator.label_map_file(path)
    elif lower.endswith(".txt"):
        validator.label_map_file(path)
    else:
        raise UserError(f"dataset validate: cannot tell the format of {fileio.redact(path)}; expected an ODVG or "
                        "inference .jsonl, a COCO .json, or a label map (.json / .txt)")


def _first_jsonl_keys(path: str) -> set[str]:
    for _, text in fileio.iter_lines(path):
        if text.strip():
            try:
                first = json.loads(text)
            except json.JSONDecodeError:
                return set()
            return set(first) if isinstance(first, dict) else set()
    return set()


def spec_sources(cfg) -> Iterable[tuple[str, dict]]:
    """``(spec key, {json_file, image_dir, label_map | captions})`` of every data source set."""
    ds = cfg.dataset
    for i, src in enumerate(ds.used_train_data_sources()):
        yield f"dataset.train_data_sources[{i}]", {"json_file": src.json_file, "image_dir": src.image_dir,
                                                   "label_map": src.label_map}
    for key in ("val_data_sources", "test_data_sources"):
        src = getattr(ds, key)
        if not src.is_unset:
            yield f"dataset.{key}", {"json_file": src.json_file, "image_dir": src.image_dir}
    calib = ds.quant_calibration_data_sources
    if not calib.is_unset:
        yield "dataset.quant_calibration_data_sources", {"json_file": calib.json_file, "image_dir": calib.image_dir,
                                                         "label_map": calib.label_map}
    infer = ds.infer_data_sources
    for j, image_dir in enumerate(infer.image_dirs or ([""] if infer.json_file or infer.captions else [])):
        entry: dict[str, Any] = {"image_dir": image_dir, "json_file": infer.json_file if j == 0 else None}
        if infer.captions and j == 0:
            entry["captions"] = infer.captions
        yield "dataset.infer_data_sources", entry


def validate_spec_source(validator: Validator, key: str, entry: dict) -> None:
    json_file, image_dir = entry.get("json_file"), entry.get("image_dir") or None
    if "captions" in entry:
        validator.captions(entry["captions"], f"{key}.captions")
    if not json_file:
        if image_dir:  # OD inference: only images; opening the source reports a missing one
            validator.image_checker(image_dir, f"{key}.image_dir")
        return
    if not fileio.exists(json_file):
        validator.report.add("missing_file", f"{key}.json_file", f"{fileio.redact(json_file)}: file not found")
        return
    if entry.get("label_map") and not fileio.exists(entry["label_map"]):
        validator.report.add("missing_file", f"{key}.label_map", f"{fileio.redact(entry['label_map'])}: file not found")
        entry = {**entry, "label_map": None}
    validate_path(validator, json_file, image_dir, entry.get("label_map"))
