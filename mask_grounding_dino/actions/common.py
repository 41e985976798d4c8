"""Small helpers shared by the actions: result folders, the model-and-data set-up of
evaluate / inference, and printed summaries."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import save_spec
from .folders import action_folder, announce
from ..utils.log import get_logger, process_rank

log = get_logger(__name__)


def action_results_dir(cfg, action: str) -> str:
    """The action's own ``results_dir``, else ``<results_dir>/<action>`` (TAO's layout), absolute;
    says where the action writes (its first line) and creates the folder."""
    path = action_folder(cfg, action)
    announce(action, path)
    os.makedirs(path, exist_ok=True)
    return path


def save_resolved_spec(cfg, results_dir: str, action: str) -> str:
    """Keep the fully resolved spec next to the results, for reproducibility."""
    path = os.path.join(results_dir, f"{action}_spec.yaml")
    save_spec(cfg, path)
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    log.info(f"\n{title}")
    for key, value in rows:
        log.info(f"  {key.ljust(width)}  {value}")


@dataclass
class ModelRun:
    """What evaluate and inference both set up: the model file and backend, the results
    folder (with the resolved spec saved in it), the dataset and its loader, the detector, and
    the Lightning device settings of a run over several processes (None: this process alone)."""

    path: str
    backend: object
    results_dir: str
    dataset: object
    loader: object
    thresholds: object
    detector: object
    devices: dict | None = None


def open_model_run(cfg, action: str, split: str, section) -> ModelRun:
    """``action``: ``evaluate`` / ``inference``; ``split``: the dataset split it reads (``test`` /
    ``infer``); ``section``: the spec section holding its thresholds."""
    from ..data.loaders import build_dataloader, build_dataset
    from ..deploy.action_model import loader_divisibility, model_path, open_action_model
    from ..deploy.detector import Detector, Thresholds
    from ..deploy.parallel import parallel_settings

    results_dir = action_folder(cfg, action)
    announce(action, results_dir)  # the action's first line; the folder is made once the model loads
    path, _ = model_path(cfg, action)
    devices = parallel_settings(cfg, action, path)
    backend = open_action_model(cfg, action, device="cpu" if devices else None)
    os.makedirs(results_dir, exist_ok=True)
    if process_rank() == 0:  # every process of a multi-process run sets up the same; one writes
        save_resolved_spec(cfg, results_dir, action)
    tp = backend.text_processor
    dataset = build_dataset(cfg, split, text_processor=tp)
    loader = build_dataloader(cfg, split, dataset=dataset, text_processor=tp,
                              size_divisibility=loader_divisibility(backend))
    thresholds = Thresholds.from_config(section, cfg.model)
    return ModelRun(path, backend, results_dir, dataset, loader, thresholds, Detector(backend, thresholds), devices)
