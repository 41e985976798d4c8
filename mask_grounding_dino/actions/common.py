"""Small helpers shared by the actions: result folders and printed summaries."""

from __future__ import annotations

import os

from ..config import save_spec


def action_results_dir(cfg, action: str) -> str:
    """The action's own ``results_dir``, else ``<results_dir>/<action>`` (TAO's layout), created."""
    section = getattr(cfg, action, None)
    own = getattr(section, "results_dir", "") if section is not None else ""
    if own:
        path = own
    elif cfg.results_dir:
        path = os.path.join(cfg.results_dir, action) if action != "train" else cfg.results_dir
    else:
        path = os.path.join("results", action)
    os.makedirs(path, exist_ok=True)
    return path


def save_resolved_spec(cfg, results_dir: str, action: str) -> str:
    """Keep the fully resolved spec next to the results, for reproducibility."""
    path = os.path.join(results_dir, f"{action}_spec.yaml")
    save_spec(cfg, path)
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    print(f"\n{title}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
