"""Evaluation result files, named as TAO Deploy names them.

For a run named ``name`` (usually the evaluated json's stem) in ``results_dir``:

* ``detailed_results_{name}.json``: everything (key metrics, per-class table, counts, thresholds);
* ``key_metrics_{name}.csv``: ``metric,value`` rows of the logged numbers;
* ``evaluation_summary_{name}.txt``: the readable summary;
* ``latest_results.json``: the key metrics of the most recent evaluation.

Each file is written atomically (``utils/atomic.py``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from mask_grounding_dino.utils.atomic import atomic_write_text


@dataclass
class ReportPaths:
    detailed: pathlib.Path
    key_metrics: pathlib.Path
    summary: pathlib.Path
    latest: pathlib.Path | None


def _json_safe(value: Any) -> Any:
    """NaN/inf are not json: written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (letters, digits, ``._-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "results"


def write_evaluation_report(results_dir: str | os.PathLike, name: str, key_metrics: Mapping[str, float],
                            details: Mapping[str, Any], summary: str, write_latest: bool = True) -> ReportPaths:
    """Write the json / csv / txt result files and return their paths."""
    out = pathlib.Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name)
    paths = ReportPaths(detailed=out / f"detailed_results_{stem}.json",
                        key_metrics=out / f"key_metrics_{stem}.csv",
                        summary=out / f"evaluation_summary_{stem}.txt",
                        latest=out / "latest_results.json" if write_latest else None)
    metrics = {k: float(v) for k, v in key_metrics.items()}
    atomic_write_text(paths.detailed, json.dumps(_json_safe({"key_metrics": metrics, **details}), indent=2))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "value"])
    writer.writerows([k, repr(v)] for k, v in metrics.items())
    atomic_write_text(paths.key_metrics, buf.getvalue())
    atomic_write_text(paths.summary, summary.rstrip("\n") + "\n")
    if paths.latest is not None:
        atomic_write_text(paths.latest, json.dumps(_json_safe(metrics), indent=2))
    return paths
