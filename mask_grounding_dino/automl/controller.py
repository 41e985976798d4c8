"""The study loop: trials in parallel on one shared Optuna storage, resumable.

Each worker (this process; other processes or machines running the same command on the same
storage URL join the same study) keeps ``automl_max_concurrent`` trials going. The budget is
the study's, counted in the storage: ``automl_max_recommendations`` trials COMPLETE or PRUNED.
A worker starts a trial while finished + running + queued trials are below the budget (two
workers starting at the same instant may overshoot it by one), and always takes a queued
(WAITING) trial, which is how a trial whose worker died is repeated. Three failures in a row
stop the study (TAO's rule): a spec that cannot train should not spend the whole budget.

Rerunning the command after a kill continues the same study: finished trials are kept, a dead
trial is marked FAIL once its heartbeat is older than the grace period and repeated from its
job's checkpoints (trial.py).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import warnings

import optuna
from optuna.trial import TrialState

from ..engine.progress import format_seconds
from ..errors import UserError
from ..utils.log import get_logger
from . import algorithms, results
from .errors import AutoMLError
from .settings import AutoMLSettings
from .storage import GRACE_S, open_storage, redact
from .trial import REASON_ATTR, VALUES_ATTR, TrialContext, TrialFailed, run_job

log = get_logger(__name__)
FAIL_STREAK = 3
WAIT_S = 2.0
#: Settings a study keeps from its creation: a worker with other values would mix two searches.
_FIXED = ("automl_algorithm", "metric", "direction", "metric_summary", "automl_max_epochs",
          "automl_reduction_factor", "automl_population_size", "automl_eval_interval")


@dataclasses.dataclass
class StudyRun:
    """One worker's view of a study."""

    study: optuna.Study
    settings: AutoMLSettings
    ctx: TrialContext
    space: object  # space.SearchSpace
    spec_value: object  # dotted key -> the study spec's value
    spec_epochs: int
    started: float = dataclasses.field(default_factory=time.time)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    error: str | None = None

    @property
    def budget(self) -> int:
        """Trials the study finishes: recommendations, or population x generations for PBT."""
        s = self.settings
        return s.automl_population_size * s.automl_max_generations if s.automl_algorithm == "pbt" \
            else s.automl_max_recommendations


def open_study(settings: AutoMLSettings, url: str, direction: str) -> optuna.Study:
    storage = open_storage(url)
    study = optuna.create_study(study_name=settings.study_name, storage=storage, direction=direction,
                                sampler=algorithms.sampler_for(settings), pruner=algorithms.pruner_for(settings),
                                load_if_exists=True)
    mine = {k: getattr(settings, k) for k in _FIXED}
    mine["direction"] = direction
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", mine)
    else:
        differing = [f"{k} {saved.get(k)!r} there, {mine[k]!r} here" for k in _FIXED if saved.get(k) != mine[k]]
        if differing:
            raise AutoMLError(f"study {settings.study_name!r} in {redact(url)} was created with other settings ("
                              f"{'; '.join(differing)}); use the same settings, or another study_name")
    return study


def _counts(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    return counts


def _fail_streak(study: optuna.Study) -> list[str]:
    """Reasons of the last FAIL_STREAK finished trials when all failed (stale trials excepted)."""
    ended = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()
             and not (t.state == TrialState.FAIL and REASON_ATTR not in t.user_attrs)]
    ended.sort(key=lambda t: t.datetime_complete)
    last = ended[-FAIL_STREAK:]
    if len(last) == FAIL_STREAK and all(t.state == TrialState.FAIL for t in last):
        return [f"trial {t.number}: {t.user_attrs[REASON_ATTR]}" for t in last]
    return []


def _progress(run: StudyRun) -> str:
    c = _counts(run.study)
    done = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
    best = results.best_trial(run.study)
    best_text = f"; best trial {best.number} {run.ctx.metric} {best.value:.4f}" if best else ""
    return (f"AutoML: {done}/{run.budget} trials done ({c[TrialState.PRUNED]} pruned, "
            f"{c[TrialState.FAIL]} failed), {c[TrialState.RUNNING]} running, elapsed "
            f"{format_seconds(time.time() - run.started)}{best_text}")


def _params_text(values: dict) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.4g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                     for k, v in values.items())


def _objective(run: StudyRun):
    def objective(trial: optuna.Trial) -> float:
        values = run.space.suggest(trial, run.spec_value)
        epochs = algorithms.trial_epochs(run.settings, run.spec_epochs)
        trial.set_user_attr(VALUES_ATTR, values)
        trial.set_user_attr("num_epochs", epochs)
        results.write_recommendation(run.ctx.automl_dir, trial.number, values)
        log.info(f"AutoML: trial {trial.number} start ({epochs} epochs): {_params_text(values)}")
        try:
            value, epoch = run_job(run.ctx, trial, {**values, "train.num_epochs": epochs},
                                   prune=run.settings.automl_algorithm in algorithms.MULTI_FIDELITY)
        except (TrialFailed, UserError) as exc:  # UserError: the sampled spec does not validate
            trial.set_user_attr(REASON_ATTR, str(exc))
            return math.nan  # Optuna records a NaN objective as FAIL: a failure never scores
        trial.set_user_attr(results.BEST_EPOCH_ATTR, epoch)
        return value
    return objective


def _after_trial(run: StudyRun):
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            outcome = f"{run.ctx.metric} {trial.value:.4f} (epoch {trial.user_attrs.get(results.BEST_EPOCH_ATTR)})"
        elif trial.state == TrialState.PRUNED:
            step = max(trial.intermediate_values) if trial.intermediate_values else 0
            outcome = f"at epoch {step}" + (f", {run.ctx.metric} {trial.intermediate_values[step]:.4f}"
                                            if trial.intermediate_values else "")
        else:
            outcome = trial.user_attrs.get(REASON_ATTR, "")
        log.info(f"AutoML: trial {trial.number} {trial.state.name} {outcome}")
        log.info(_progress(run))
        with run.lock:
            results.write_controller(run.ctx.automl_dir, study)
    return callback


def fail_stale(study: optuna.Study) -> None:
    """Dead workers' trials: FAIL, then queued again (storage.py's retry callback)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _may_start(run: StudyRun) -> bool | None:
    """True: start (or take) a trial; False: wait; None: the budget is spent."""
    fail_stale(run.study)
    c = _counts(run.study)
    done = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
    if done >= run.settings.automl_max_recommendations:
        return None
    if c[TrialState.WAITING]:
        return True
    return done + c[TrialState.RUNNING] < run.settings.automl_max_recommendations


def start_one(run: StudyRun, objective, callback) -> None:
    """Run one trial; called holding ``run.lock``, released once the trial exists (so the
    threads of this worker never take the same queued trial, nor overshoot the budget)."""
    held = [True]

    def started(trial):
        held[0] = False
        run.lock.release()
        return objective(trial)

    try:
        run.study.optimize(started, n_trials=1, callbacks=[callback], gc_after_trial=False)
    finally:
        if held[0]:
            run.lock.release()


def _worker(run: StudyRun, objective, callback) -> None:
    while not run.stop.is_set():
        run.lock.acquire()
        state, streak = _may_start(run), _fail_streak(run.study)
        if streak:
            run.error = f"{FAIL_STREAK} trials failed in a row; stopping: " + " | ".join(streak)
            run.stop.set()
        if streak or state is None or not state:
            run.lock.release()
            if streak or state is None:
                return
            run.stop.wait(WAIT_S)
            continue
        start_one(run, objective, callback)


def run_workers(run: StudyRun) -> None:
    """Run trials until the study's budget is spent; raises AutoMLError after a failure streak."""
    log.info(f"AutoML: study {run.study.study_name!r}, {run.settings.automl_algorithm}, "
             f"{run.budget} trials, {run.settings.automl_max_concurrent} at once here; "
             f"dead trials are repeated after {GRACE_S} s without a heartbeat")
    for param in run.space.params:
        log.info(f"AutoML: search {param.name}: {param.describe()}")
    for key, why in run.space.skipped.items():
        log.info(f"AutoML: not searched {key}: {why}")
    log.info(_progress(run))
    objective, callback = _objective(run), _after_trial(run)
    threads = [threading.Thread(target=_worker, args=(run, objective, callback), name=f"automl-{i}", daemon=True)
               for i in range(run.settings.automl_max_concurrent)]
    for i, thread in enumerate(threads):
        thread.start()
        if i + 1 < len(threads):
            time.sleep(0.2)  # staggered: each thread's first ask sees the others' trials
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        run.stop.set()
        raise
    if run.error:
        raise AutoMLError(run.error)
