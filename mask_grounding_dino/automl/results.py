"""What a study leaves in the AutoML folder.

  recommendation_<trial>.yaml  the trial's sampled spec keys (dotted, TAO's file name)
  controller.json              one entry per trial: id, status, metric, epochs, job, folder (TAO's name)
  report.json / report.md      settings, search space, the trials table, the best trial, each
                               parameter's effect (Optuna's fANOVA importances)
  best_spec.yaml               the full spec of the best trial, runnable as is (it trains anew
                               in the study's results_dir; train.results_dir is cleared). For PBT:
                               the winner's last parameters for all its epochs (a fixed-parameter
                               rerun of a schedule that changed between generations)
  plots/                       optimisation history, parallel coordinates, importances,
                               intermediate values (optuna.visualization.matplotlib)
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from ..jobs import artifacts
from ..utils.atomic import atomic_write_json, atomic_write_text
from ..utils.log import get_logger
from .trial import FOLDER_ATTR, JOB_ATTR, REASON_ATTR, VALUES_ATTR

log = get_logger(__name__)
BEST_EPOCH_ATTR = "best_epoch"
PLOTS = ("optimization_history", "parallel_coordinate", "param_importances", "intermediate_values")


def write_recommendation(automl_dir: str, number: int, values: dict[str, Any]) -> str:
    import yaml

    path = os.path.join(automl_dir, f"recommendation_{number}.yaml")
    atomic_write_text(path, yaml.safe_dump({k: _plain(v) for k, v in values.items()}, sort_keys=False))
    return path


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    folder = trial.user_attrs.get(FOLDER_ATTR)
    records = artifacts.validation_records(folder) if folder else []
    return max((int(r["epoch"]) + 1 for r in records), default=0)


def trial_rows(study: optuna.Study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        value = t.value if t.state == TrialState.COMPLETE else None
        if t.state == TrialState.PRUNED and t.intermediate_values:
            value = None
        rows.append({
            "id": t.number, "status": t.state.name, "value": value,
            "best_epoch": t.user_attrs.get(BEST_EPOCH_ATTR),
            "last_reported": (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None),
            "epochs_reported": max(t.intermediate_values) if t.intermediate_values else 0,
            "epochs_trained": _epochs_trained(t),
            "params": {k: _plain(v) for k, v in (t.user_attrs.get(VALUES_ATTR) or t.params).items()},
            "job_id": t.user_attrs.get(JOB_ATTR), "folder": t.user_attrs.get(FOLDER_ATTR),
            "retry_of": t.system_attrs.get("failed_trial"), "reason": t.user_attrs.get(REASON_ATTR),
            "generation": t.user_attrs.get("generation"), "member": t.user_attrs.get("member"),
            "seconds": seconds})
    return rows


def write_controller(automl_dir: str, study: optuna.Study) -> None:
    atomic_write_json(os.path.join(automl_dir, "controller.json"), trial_rows(study))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial
        return None


def best_checkpoint(trial: optuna.trial.FrozenTrial) -> str | None:
    """The checkpoint of the trial's counted epoch, else the folder's latest."""
    folder = trial.user_attrs.get(FOLDER_ATTR)
    if not folder:
        return None
    epoch = trial.user_attrs.get(BEST_EPOCH_ATTR)
    exact = [p for _, e, p in artifacts.checkpoints(folder) if epoch is not None and e == int(epoch) - 1]
    return exact[-1] if exact else artifacts.latest_checkpoint(folder)


def _importances(study: optuna.Study) -> dict[str, float]:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError) as exc:  # e.g. every trial has the same value
        log.info(f"AutoML: parameter importances not computed ({exc})")
        return {}


def write_plots(automl_dir: str, study: optuna.Study) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder = os.path.join(automl_dir, "plots")
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
                axes = getattr(ovm, f"plot_{name}")(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            path = os.path.join(folder, f"{name}.png")
            figure.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(figure)
            written[name] = path
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for that plot
            log.info(f"AutoML: plot {name} not drawn ({exc.__class__.__name__}: {exc})")
    return written


def write_best_spec(automl_dir: str, trial: optuna.trial.FrozenTrial, ctx) -> str | None:
    """The best trial's spec as run, made runnable anew: ``train.results_dir`` cleared (training
    writes into ``<results_dir>/train``), no resume path, the trial's epochs kept."""
    from ..config import load_spec, save_spec

    overrides = {**ctx.base_overrides, **(trial.user_attrs.get(VALUES_ATTR) or {}),
                 "train.num_epochs": trial.user_attrs.get("num_epochs"), "train.results_dir": "",
                 "train.resume_training_checkpoint_path": ""}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_spec(overrides=overrides, base=ctx.base_data)
    path = os.path.join(automl_dir, "best_spec.yaml")
    save_spec(cfg, path)
    return path


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def write_report(automl_dir: str, study: optuna.Study, ctx, settings, space, started: float,
                 finished: float, plots: bool = True) -> dict:
    rows = trial_rows(study)
    best = best_trial(study)
    importances = _importances(study)
    report = {
        "study": study.study_name, "algorithm": settings.automl_algorithm, "metric": ctx.metric,
        "direction": ctx.direction, "metric_summary": ctx.summary, "settings": settings.to_dict(),
        "search_space": {p.name: p.describe() for p in space.params}, "not_searched": dict(space.skipped),
        "counts": {s: sum(r["status"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")},
        "epochs_trained": sum(r["epochs_trained"] for r in rows if r["retry_of"] is None),
        "wall_seconds": round(finished - started, 1), "trials": rows, "importances": importances, "best": None}
    if settings.storage:
        from .storage import redact

        report["settings"]["storage"] = redact(settings.storage)  # never a password in a report
    if best is not None:
        spec_path = write_best_spec(automl_dir, best, ctx)
        report["best"] = {"id": best.number, "value": best.value, "epoch": best.user_attrs.get(BEST_EPOCH_ATTR),
                          "params": {k: _plain(v) for k, v in (best.user_attrs.get(VALUES_ATTR) or best.params).items()},
                          "checkpoint": best_checkpoint(best), "spec": spec_path,
                          "folder": best.user_attrs.get(FOLDER_ATTR)}
    if plots:
        report["plots"] = write_plots(automl_dir, study)
    atomic_write_json(os.path.join(automl_dir, "report.json"), report)
    atomic_write_text(os.path.join(automl_dir, "report.md"), _markdown(report))
    write_controller(automl_dir, study)
    return report


def _markdown(report: dict) -> str:
    lines = [f"# AutoML report: {report['study']}", "",
             f"- algorithm: {report['algorithm']}; metric: `{report['metric']}` ({report['direction']}, "
             f"{report['metric_summary']} epoch of each trial)",
             f"- trials: " + ", ".join(f"{v} {k.lower()}" for k, v in report["counts"].items() if v),
             f"- epochs trained: {report['epochs_trained']}; wall time: {report['wall_seconds']:.0f} s", ""]
    best = report["best"]
    if best:
        lines += ["## Best trial", "", f"Trial {best['id']}: {report['metric']} = {best['value']:.4f} "
                  f"at epoch {best['epoch']}", "", f"- checkpoint: `{best['checkpoint']}`",
                  f"- spec: `{best['spec']}` (run it with `mask_grounding_dino train -e {best['spec']}`)", ""]
        lines += [f"- `{k}`: {_fmt(v)}" for k, v in best["params"].items()] + [""]
    else:
        lines += ["## Best trial", "", "No trial completed with a metric.", ""]
    names = list(report["search_space"])
    lines += ["## Trials", "", "| id | status | value | epoch | epochs | " + " | ".join(names) + " |",
              "|---" * (5 + len(names)) + "|"]
    for row in report["trials"]:
        cells = [row["id"], row["status"], row["value"], row["best_epoch"], row["epochs_trained"],
                 *[row["params"].get(n) for n in names]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    lines += ["", "## Parameter effect", ""]
    if report["importances"]:
        lines += ["fANOVA importance of each parameter for the metric (sums to 1):", ""]
        lines += [f"- `{k}`: {v:.3f}" for k, v in report["importances"].items()]
    else:
        lines.append("Not computed: fewer than two completed trials, or no variation.")
    lines += ["", "## Search space", ""] + [f"- `{k}`: {v}" for k, v in report["search_space"].items()]
    lines += [f"- `{k}`: not searched, {v}" for k, v in report["not_searched"].items()]
    failed = [r for r in report["trials"] if r["status"] == "FAIL" and r["reason"]]
    if failed:
        lines += ["", "## Failed trials", ""] + [f"- trial {r['id']}: {r['reason']}" for r in failed]
    return "\n".join(lines) + "\n"
