"""TAO's algorithm names -> an Optuna sampler and pruner.

  bayesian   Gaussian-process sampler (expected improvement), no pruning
  hyperband  random sampling + Hyperband pruner
  asha       random sampling + successive-halving pruner (asynchronous: a trial is judged at a
             rung as soon as it reaches it)
  bohb       TPE sampler + Hyperband pruner (Bayesian optimisation over Hyperband)
  pbt        random initial population; generations are planned by pbt.py, not by a sampler

Rungs are TAO's: epochs r, r x eta, r x eta^2 ... up to ``automl_max_epochs`` with r = 1 and
eta = ``automl_reduction_factor`` (27 and 3: 1, 3, 9, 27). A pruned trial stops at its rung.
"""

from __future__ import annotations

import optuna

from .settings import AutoMLSettings

#: Algorithms whose trials train for automl_max_epochs and are judged at rungs.
MULTI_FIDELITY = ("hyperband", "asha", "bohb")


def rungs(max_epochs: int, reduction_factor: int) -> list[int]:
    """TAO's rung epochs: 1, eta, eta^2, ... <= max_epochs, and max_epochs itself."""
    out, epoch = [], 1
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= reduction_factor
    return out + [max_epochs]


def sampler_for(settings: AutoMLSettings) -> optuna.samplers.BaseSampler:
    seed = settings.seed
    algorithm = settings.automl_algorithm
    if algorithm == "bayesian":
        # GP over a few random trials first (its model needs points); n_startup_trials as
        # Optuna's default would spend half of TAO's 20-recommendation budget at random.
        startup = max(2, min(10, settings.automl_max_recommendations // 4))
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if algorithm == "bohb":
        startup = max(2, min(10, settings.automl_max_recommendations // 4))
        # constant_liar: parallel workers do not all propose the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                          constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def pruner_for(settings: AutoMLSettings) -> optuna.pruners.BasePruner:
    algorithm = settings.automl_algorithm
    if algorithm in ("hyperband", "bohb"):
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.automl_max_epochs,
                                              reduction_factor=settings.automl_reduction_factor)
    if algorithm == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                      reduction_factor=settings.automl_reduction_factor,
                                                      min_early_stopping_rate=0)
    return optuna.pruners.NopPruner()


def trial_epochs(settings: AutoMLSettings, spec_epochs: int) -> int:
    """Epochs a trial trains for (before pruning): the rung budget for multi-fidelity
    algorithms, the PBT interval per generation, the spec's own otherwise (bayesian)."""
    if settings.automl_algorithm in MULTI_FIDELITY:
        return settings.automl_max_epochs * settings.epoch_multiplier
    if settings.automl_algorithm == "pbt":
        return settings.automl_eval_interval * settings.epoch_multiplier
    return spec_epochs
