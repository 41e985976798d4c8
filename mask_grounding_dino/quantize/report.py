"""Before / after: accuracy, latency and file size of a quantised model, in one run.

For the float model and the quantised one, on ``dataset.val_data_sources``:

* accuracy: the evaluate action's scoring (COCO bbox and segm through pycocotools for OD,
  the referring metrics for VG) with the ``evaluate.*`` thresholds, under the metric names
  of validation (``[bbox] val_mAP@50``, ...);
* latency per image: batch 1, the first ``latency_images`` validation images, ``warmup``
  untimed passes, then the median over ``repeats`` passes of each image; both models get the
  same image tensors and the same thread count (``torch.get_num_threads()``, also given to
  onnxruntime);
* file size on disk.

Written as ``quantize_report.json`` and ``quantize_report.md`` (a table) in the results folder,
plus ``quantize_report.png`` (bars of the ratios) when matplotlib is there.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from ..utils.atomic import atomic_write_json, atomic_write_text

#: Metrics shown in the table (others are kept in the JSON).
TABLE_METRICS = ("[bbox] val_mAP@50", "[segm] val_mAP@50", "[bbox] val_mAP@50-95")


@dataclass
class Measurement:
    """One model in the report."""

    label: str                   # "float" | "quantized"
    path: str
    describe: str
    size_mb: float
    latency_ms: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    threads: int = 1


def file_size_mb(path: str) -> float:
    return os.path.getsize(path) / 2**20 if os.path.isfile(path) else float("nan")


def _eval_spec(cfg, input_size: tuple[int, int] | None):
    """The spec scoring ``val_data_sources`` through the evaluate pipeline (a fixed size for ONNX graphs)."""
    spec = copy.deepcopy(cfg)
    spec.dataset.test_data_sources = copy.deepcopy(cfg.dataset.val_data_sources)
    if input_size is not None:
        spec.evaluate.input_height, spec.evaluate.input_width = input_size
    return spec


def _scoring(spec, dataset):
    """The evaluate action's scorer (same metric names), for the spec's test source."""
    from ..deploy.detector import Thresholds
    from ..metrics.scoring import DatasetScoring

    source = spec.dataset.test_data_sources
    data_type = (source.data_type or "OD").upper()
    return DatasetScoring(data_type, coco_gt=source.json_file,
                          categories=dict(dataset.categories) if data_type == "OD" else None,
                          with_segm=bool(spec.dataset.has_mask),
                          score_threshold=Thresholds.from_config(spec.evaluate, spec.model).conf_threshold)


def evaluate_backend(cfg, backend) -> dict[str, float]:
    """Validation metrics of ``backend`` (a deploy backend) on ``dataset.val_data_sources``."""
    from ..data.loaders import build_dataloader, build_dataset
    from ..deploy.detector import Detector, Thresholds

    spec = _eval_spec(cfg, backend.fixed_input_size)
    data_type = (spec.dataset.test_data_sources.data_type or "OD").upper()
    tp = backend.text_processor
    dataset = build_dataset(spec, "test", text_processor=tp)
    loader = build_dataloader(spec, "test", dataset=dataset, text_processor=tp,
                              size_divisibility=32 if backend.supports_padding else 1)
    detector = Detector(backend, Thresholds.from_config(spec.evaluate, spec.model))
    scoring = _scoring(spec, dataset)
    for batch in loader:
        scoring.add(batch.targets, detector.detect_batch(batch, data_type))
    key_metrics, _ = scoring.compute("val")
    return {k: float(v) for k, v in key_metrics.items()}


def latency_inputs(cfg, backend, count: int) -> list[tuple[torch.Tensor, str]]:
    """``count`` validation images as ``[1,3,H,W]`` tensors with their caption (the evaluate prompt)."""
    from ..data.collate import pad_images
    from ..data.loaders import build_dataset

    spec = _eval_spec(cfg, backend.fixed_input_size)
    dataset = build_dataset(spec, "test", text_processor=backend.text_processor)
    items = []
    for index in range(min(count, len(dataset))):
        image, target = dataset[index]
        batch, _ = pad_images([image], [target.size], 32 if backend.supports_padding else 1)
        items.append((batch, target.caption))
    return items


def time_backend(backend, inputs: list[tuple[torch.Tensor, str]], *, warmup: int = 2, repeats: int = 3) -> float:
    """Median milliseconds of one image through the network (image side, text side and heads)."""
    def once(images, caption):
        handle = backend.encode_image(images, None)
        backend.run(handle, [caption])

    for images, caption in inputs[:1] * warmup:
        once(images, caption)
    times = []
    for images, caption in inputs:
        for _ in range(repeats):
            start = time.perf_counter()
            once(images, caption)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def match_threads(backend) -> None:
    """Give an onnxruntime backend the same intra-op thread count as PyTorch."""
    if hasattr(backend, "set_intra_op_threads"):
        backend.set_intra_op_threads(torch.get_num_threads())


def measure(cfg, label: str, path: str, backend, *, latency_images: int = 4, with_metrics: bool = True) -> Measurement:
    """Accuracy (optional), latency and size of one model."""
    match_threads(backend)
    latency = time_backend(backend, latency_inputs(cfg, backend, latency_images)) if latency_images else None
    metrics = evaluate_backend(cfg, backend) if with_metrics else {}
    return Measurement(label, path, backend.describe(), file_size_mb(path), latency, metrics, torch.get_num_threads())


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def table(rows: list[Measurement]) -> str:
    """Markdown table: one row per model, plus the after/before ratios."""
    metric_names = [m for m in TABLE_METRICS if any(m in r.metrics for r in rows)]
    head = ["model", "file", "size MB", "latency ms"] + metric_names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.label, os.path.basename(r.path), _fmt(r.size_mb, 1), _fmt(r.latency_ms, 1)]
        cells += [_fmt(r.metrics.get(m)) for m in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) == 2 and rows[0].size_mb:
        before, after = rows
        ratio = lambda a, b: None if a is None or b in (None, 0) else a / b  # noqa: E731
        cells = ["after / before", "", _fmt(ratio(after.size_mb, before.size_mb), 2),
                 _fmt(ratio(after.latency_ms, before.latency_ms), 2)]
        cells += [_fmt(after.metrics.get(m, float("nan")) - before.metrics.get(m, float("nan")), 3) + " (diff)"
                  for m in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results_dir: str, rows: list[Measurement], context: dict) -> dict[str, str]:
    """``quantize_report.json`` / ``.md`` (and ``.png`` when matplotlib is available); returns the paths."""
    paths = {"json": os.path.join(results_dir, "quantize_report.json"),
             "markdown": os.path.join(results_dir, "quantize_report.md")}
    atomic_write_json(paths["json"], {**context, "models": [asdict(r) for r in rows]})
    text = (f"# Quantisation report\n\n{context.get('summary', '')}\n\n{table(rows)}\n\n"
            f"Latency: batch 1, median over the first validation images after warm-up, "
            f"{rows[0].threads} threads, same inputs for both models.\n")
    atomic_write_text(paths["markdown"], text)
    picture = _plot(results_dir, rows)
    if picture:
        paths["plot"] = picture
    return paths


def _plot(results_dir: str, rows: list[Measurement]) -> str | None:
    if len(rows) != 2:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    before, after = rows
    names, values = ["size", "latency"], [after.size_mb / before.size_mb,
                                          (after.latency_ms or 0) / (before.latency_ms or 1)]
    for metric in TABLE_METRICS:
        if metric in before.metrics and before.metrics[metric] > 0:
            names.append(metric.replace(" val_", " "))
            values.append(after.metrics.get(metric, 0.0) / before.metrics[metric])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, values, color=["#4c72b0", "#55a868"] + ["#c44e52"] * (len(values) - 2))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("quantised / float")
    ax.set_title(os.path.basename(after.path))
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    path = os.path.join(results_dir, "quantize_report.png")
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
