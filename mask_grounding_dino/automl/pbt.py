"""Population based training on the study's storage (Optuna has no PBT; this plans its
generations with Optuna trials as the members' records).

Trial = one member for one generation of ``automl_eval_interval`` epochs. Generation 0 samples
``automl_population_size`` members at random. When a generation has ended, the next one is
queued (``enqueue_trial``: its parameters and where it resumes from live in the storage): the
bottom 20% (failed members first) copy a top-20% member's parameters and checkpoint (exploit)
and multiply or divide each numeric parameter by ``automl_perturbation_factor`` (explore);
the others continue with their own. Every member of generation g+1 resumes exactly from the
checkpoint its generation g ended with (ours or the copied one), trained to (g+1) x interval
epochs. The optimiser state in a copied checkpoint is rewritten to the new learning rates and
weight decay (Lightning restores the optimiser's own rates on resume, which would otherwise
undo the perturbation). The generation barrier is planned by the worker that sees the
generation end: run PBT from one worker process (its trials still run in parallel).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import threading

import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ..jobs import artifacts
from ..utils.log import get_logger
from . import results
from .controller import StudyRun, _after_trial, _fail_streak, _params_text, fail_stale, start_one
from .errors import AutoMLError
from .trial import REASON_ATTR, VALUES_ATTR, TrialFailed, run_job

log = get_logger(__name__)
GEN, MEMBER, RESUME, PARENT = "generation", "member", "resume_from", "exploited_from"
FRACTION = 0.2


def _population(study) -> dict[int, list[optuna.trial.FrozenTrial]]:
    gens: dict[int, list] = {}
    for t in study.get_trials(deepcopy=False):
        if GEN in t.user_attrs:
            gens.setdefault(int(t.user_attrs[GEN]), []).append(t)
    return gens


def _latest(members: list) -> dict[int, optuna.trial.FrozenTrial]:
    """Member -> its newest trial in a generation (a repeated trial replaces its dead one)."""
    out = {}
    for t in sorted(members, key=lambda t: t.number):
        out[int(t.user_attrs[MEMBER])] = t
    return out


def perturb(values: dict, space, factor: float, rng: random.Random) -> dict:
    out = dict(values)
    for param in space.params:
        if param.name not in out or param.kind not in ("float", "int"):
            continue
        scaled = out[param.name] * (factor if rng.random() < 0.5 else 1.0 / factor)
        scaled = min(max(scaled, param.low), param.high)
        out[param.name] = int(round(scaled)) if param.kind == "int" else float(scaled)
    return out


def _group_rates(optim: dict) -> dict[str, float]:
    """Base rate of each of our optimiser's parameter groups (engine/optim.py names them)."""
    return {"main": optim["lr"], "backbone": optim["lr_backbone"],
            "linear_proj": optim["lr"] * optim["lr_linear_proj_mult"]}


def transplant(source: str, target: str, old: dict, new: dict) -> None:
    """Copy a training checkpoint, its optimiser and scheduler rescaled from ``old`` to ``new``
    learning rates / weight decay (dicts of train.optim values). Groups are known by name: the
    defaults give two groups the same rate (lr_backbone = lr x lr_linear_proj_mult = 2e-5)."""
    import torch

    from ..utils.atomic import atomic_torch_save

    if all(old.get(k) == new.get(k) for k in ("lr", "lr_backbone", "lr_linear_proj_mult", "weight_decay")):
        shutil.copyfile(source, target)
        return
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    olds, news = _group_rates(old), _group_rates(new)
    ratios = []
    for state in ckpt.get("optimizer_states", []):
        for group in state["param_groups"]:
            name = group.get("name")
            if name not in olds:
                raise AutoMLError(f"{source}: optimiser group {name!r} is not one of {', '.join(olds)}; "
                                  "cannot carry new learning rates into it")
            ratio = news[name] / olds[name] if olds[name] else 1.0
            ratios.append(ratio)
            for key in ("lr", "initial_lr"):
                if key in group:
                    group[key] *= ratio
            group["weight_decay"] = new["weight_decay"]
    for sched in ckpt.get("lr_schedulers", []):
        for key in ("base_lrs", "_last_lr"):
            if key in sched:
                sched[key] = [v * r for v, r in zip(sched[key], ratios)]
    atomic_torch_save(ckpt, target)


def _optim_of(values: dict, spec_value) -> dict:
    keys = ("lr", "lr_backbone", "lr_linear_proj_mult", "weight_decay")
    return {k: values.get(f"train.optim.{k}", spec_value(f"train.optim.{k}")) for k in keys}


def plan_next(run: StudyRun, gen: int, members: dict[int, optuna.trial.FrozenTrial]) -> None:
    """Queue generation ``gen + 1`` from the ended generation ``gen``."""
    rng = random.Random((run.settings.seed or 0) * 1000 + gen)
    size = run.settings.automl_population_size
    sign = 1 if run.ctx.direction == "maximize" else -1
    scored = sorted(members.values(), key=lambda t: (t.state == TrialState.COMPLETE,
                                                     sign * t.value if t.state == TrialState.COMPLETE else 0.0))
    count = max(1, int(math.ceil(size * FRACTION)))
    bottom, top = scored[:count], [t for t in scored[-count:] if t.state == TrialState.COMPLETE]
    if not top:
        raise AutoMLError(f"PBT generation {gen}: no member completed; stopping")
    folder = os.path.join(run.ctx.automl_dir, "pbt")
    os.makedirs(folder, exist_ok=True)
    for member, trial in sorted(members.items()):
        source, parent = trial, None
        if trial in bottom or trial.state != TrialState.COMPLETE:
            source = rng.choice(top)
            parent = source.number
        values = dict(source.user_attrs[VALUES_ATTR])
        if parent is not None:
            values = perturb(values, run.space, run.settings.automl_perturbation_factor, rng)
        checkpoint = artifacts.latest_checkpoint(source.user_attrs["experiment_dir"])
        if checkpoint is None:
            raise AutoMLError(f"PBT: trial {source.number} left no checkpoint to continue from")
        target = os.path.join(folder, f"generation_{gen + 1}_member_{member}.pth")
        transplant(checkpoint, target, _optim_of(source.user_attrs[VALUES_ATTR], run.spec_value),
                   _optim_of(values, run.spec_value))
        raw = {k: v for k, v in values.items() if k in run.space.names()}
        run.study.enqueue_trial(raw, user_attrs={GEN: gen + 1, MEMBER: member, RESUME: target, PARENT: parent},
                                skip_if_exists=False)
        how = f"exploits trial {parent} (perturbed)" if parent is not None else "continues"
        log.info(f"AutoML PBT: generation {gen + 1} member {member} {how}: {_params_text(values)}")


def _objective(run: StudyRun):
    interval = run.settings.automl_eval_interval * run.settings.epoch_multiplier

    def objective(trial: optuna.Trial) -> float:
        gen, member = int(trial.user_attrs[GEN]), int(trial.user_attrs[MEMBER])
        values = run.space.suggest(trial, run.spec_value)
        epochs = (gen + 1) * interval
        trial.set_user_attr(VALUES_ATTR, values)
        trial.set_user_attr("num_epochs", epochs)
        results.write_recommendation(run.ctx.automl_dir, trial.number, values)
        overrides = {**values, "train.num_epochs": epochs}
        if trial.user_attrs.get(RESUME):
            overrides["train.resume_training_checkpoint_path"] = trial.user_attrs[RESUME]
        log.info(f"AutoML PBT: trial {trial.number} (generation {gen}, member {member}) start, epochs "
                 f"{gen * interval + 1}..{epochs}")
        try:
            value, epoch = run_job(run.ctx, trial, overrides, prune=False, first_epoch=gen * interval + 1)
        except (TrialFailed, UserError) as exc:
            trial.set_user_attr(REASON_ATTR, str(exc))
            return math.nan
        trial.set_user_attr(results.BEST_EPOCH_ATTR, epoch)
        return value
    return objective


def run_population(run: StudyRun) -> None:
    s = run.settings
    if run.ctx.summary != "last":
        log.info("AutoML PBT: members are ranked by their generation's last epoch (their current state)")
        run.ctx.summary = "last"
    if not run.study.get_trials(deepcopy=False):
        for member in range(s.automl_population_size):
            run.study.enqueue_trial({}, user_attrs={GEN: 0, MEMBER: member})
    objective, callback = _objective(run), _after_trial(run)

    def worker() -> None:
        while not run.stop.is_set():
            run.lock.acquire()
            fail_stale(run.study)
            step = _next_step(run)
            if step != "run":
                run.lock.release()
                if step == "done":
                    return
                run.stop.wait(2.0)
                continue
            start_one(run, objective, callback)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(s.automl_max_concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if run.error:
        raise AutoMLError(run.error)


def _has(run: StudyRun, state: TrialState) -> bool:
    return bool(run.study.get_trials(deepcopy=False, states=(state,)))


def _next_step(run: StudyRun) -> str:
    """run (a queued member is there), wait (members still train) or done."""
    if _has(run, TrialState.WAITING):
        return "run"
    if _has(run, TrialState.RUNNING):
        return "wait"
    if not _advance(run):
        return "done"
    return "run" if _has(run, TrialState.WAITING) else "wait"


def _advance(run: StudyRun) -> bool:
    """Plan the next generation when the newest one has ended; False when PBT is finished."""
    gens = _population(run.study)
    if not gens:
        return False
    newest = max(gens)
    members = _latest(gens[newest])
    if any(not t.state.is_finished() for t in members.values()):
        return True
    streak = _fail_streak(run.study)
    if all(t.state == TrialState.FAIL for t in members.values()):
        run.error = f"PBT generation {newest}: every member failed: " + " | ".join(streak or [
            f"trial {t.number}: {t.user_attrs.get(REASON_ATTR, 'its worker died')}" for t in members.values()])
        run.stop.set()
        return False
    if newest + 1 >= run.settings.automl_max_generations:
        return False
    plan_next(run, newest, members)
    return True
