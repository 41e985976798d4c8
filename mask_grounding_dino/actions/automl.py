"""``mask_grounding_dino automl -e spec.yaml [--automl-spec automl.yaml] [key=value ...]``.

spec + settings -> search space (train schema) -> Optuna study on a shared storage -> trials as
train jobs -> report, best spec and plots in ``<results_dir>/automl``. Rerunning the same
command continues the study; running it on several machines with one ``storage`` URL makes
them share it.
"""

from __future__ import annotations

import os
import time

from ..errors import SpecError
from ..utils.log import get_logger

log = get_logger(__name__)
FOLDER = "automl"

HELP = {
    "summary": "hyperparameter search (TAO's AutoML algorithms on Optuna); resumes when rerun",
    "description": "Search the train schema's AutoML parameters with bayesian, hyperband, asha, bohb or pbt. Each "
                   "trial is a train job; results go to <results_dir>/automl (report.md, best_spec.yaml, plots). "
                   "Settings (TAO's names) come from --automl-spec FILE and key=value pairs without a dot; dotted "
                   "key=value pairs override the spec.",
    "keys": [
        ("automl_algorithm", "bayesian (default), hyperband, asha, bohb, pbt"),
        ("automl_max_recommendations", "trials to finish (complete or pruned; TAO: 20)"),
        ("automl_max_epochs", "hyperband, asha, bohb: a trial's epoch budget (TAO: 27)"),
        ("automl_reduction_factor", "rungs at 1, f, f^2 ... epochs (TAO: 3 -> 1, 3, 9, 27)"),
        ("automl_max_concurrent", "trials at once on this machine (TAO: 4)"),
        ("automl_population_size", "pbt: members (TAO: 10); automl_max_generations (20), automl_eval_interval "
                                   "(epochs per generation, 10), automl_perturbation_factor (1.2)"),
        ("metric", "the validation key to optimise (default [bbox] val_mAP@50); direction: maximize / minimize"),
        ("storage", "an SQLAlchemy URL shared by every worker (default: sqlite in <results_dir>/automl)"),
        ("automl_hyperparameters", "dotted spec keys to search instead of the schema's defaults; "
                                   "custom_param_ranges: {key: {valid_min, valid_max, ...}}"),
    ],
    "examples": [
        "mask_grounding_dino automl -e spec.yaml results_dir=runs/hpo automl_algorithm=asha "
        "automl_max_recommendations=12 automl_max_epochs=9",
        "mask_grounding_dino automl -e spec.yaml --automl-spec automl.yaml "
        "storage=postgresql+psycopg2://hpo@db-host/hpo",
    ],
}


def automl_dir(cfg) -> str:
    if not cfg.results_dir:
        raise SpecError("results_dir: required for automl (its study, trials and report go to <results_dir>/automl)")
    if "://" in str(cfg.results_dir):
        raise SpecError(f"results_dir {cfg.results_dir!r}: AutoML keeps its study database and trial jobs on a "
                        "local or shared file system, not a URL")
    return os.path.join(os.path.abspath(os.path.expanduser(str(cfg.results_dir))), FOLDER)


def run(spec_file: str | None, overrides: list[str], settings, *, job_timeout_s: float | None = None) -> dict:
    """Run (or continue) the study; returns the report (report.json's content)."""
    import optuna

    from ..config.schema import build_schema
    from ..config import get_value
    from ..jobs import Workspace
    from ..jobs.specs import read_request
    from ..automl import controller, metric, pbt, results
    from ..automl.space import build_space
    from ..automl.storage import storage_url
    from ..automl.trial import TrialContext

    request, cfg = read_request(spec_file, None, overrides)
    metric.check_metric(settings.metric)
    direction = metric.direction_of(settings.metric, settings.direction)
    _check_validation(cfg, settings)
    space = build_space(build_schema("train"), cfg, settings.automl_hyperparameters, settings.custom_param_ranges)
    folder = automl_dir(cfg)
    os.makedirs(folder, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our lines say what happens, once
    url = storage_url(folder, settings.storage)
    study = controller.open_study(settings, url, direction)
    workspace = Workspace(os.path.join(folder, "jobs"))
    workspace.set_max_concurrent(settings.automl_max_concurrent)
    ctx = TrialContext(workspace, folder, request.data, request.overrides, settings.metric, direction,
                       settings.metric_summary, job_timeout_s)
    run_ = controller.StudyRun(study, settings, ctx, space, lambda key: get_value(cfg, key),
                               int(cfg.train.num_epochs))
    started = time.time()
    try:
        if settings.automl_algorithm == "pbt":
            pbt.run_population(run_)
        else:
            controller.run_workers(run_)
    except (KeyboardInterrupt, SystemExit):
        # Stopped on purpose (Ctrl-C, or SIGTERM: a canceled AutoML job): its trials stop too.
        # A kill -9 cannot do this; the trials then run on and a rerun takes them over.
        run_.stop.set()
        _cancel_trials(workspace)
        raise
    finally:
        report = results.write_report(folder, study, ctx, settings, space, started, time.time())
    best = report["best"]
    if best:
        log.info(f"AutoML: best trial {best['id']}: {settings.metric} {best['value']:.4f} at epoch {best['epoch']}; "
                 f"spec {best['spec']}; checkpoint {best['checkpoint']}")
    log.info(f"AutoML: report {os.path.join(folder, 'report.md')}")
    return report


def _check_validation(cfg, settings) -> None:
    """A trial is judged by its validations: refuse a spec that would never validate in time."""
    from ..automl.algorithms import MULTI_FIDELITY, trial_epochs

    src = cfg.dataset.val_data_sources
    if not (src.json_file and src.image_dir):
        raise SpecError("dataset.val_data_sources: required for automl (each trial is scored on validation)")
    interval, epochs = int(cfg.train.validation_interval), trial_epochs(settings, int(cfg.train.num_epochs))
    # Multi-fidelity trials are judged at rung 1; every other trial at least once by its last epoch.
    first = 1 if settings.automl_algorithm in MULTI_FIDELITY else epochs
    if interval > first:
        raise SpecError(f"train.validation_interval {interval}: a trial validates first at epoch {interval}, but it "
                        f"is judged at epoch {first}; set train.validation_interval=1")


def _cancel_trials(workspace) -> None:
    for job in workspace.list_jobs(status=("Pending", "Running")):
        log.info(f"AutoML: stopping trial job {job.label}")
        workspace.cancel(job.id, wait=False)


def _exit_on_sigterm() -> None:
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def split_pairs(pairs: list[str]) -> tuple[list[str], list[str]]:
    """(settings pairs, spec overrides): a dotted key or a top-level spec key is the spec's;
    any other key is an AutoML setting (an unknown one is refused with the nearest name)."""
    from ..config import ExperimentConfig
    from ..config.hints import field_kinds

    top = set(field_kinds(ExperimentConfig))
    settings, overrides = [], []
    for pair in pairs:
        key = pair.split("=", 1)[0].strip()
        (overrides if "." in key or key in top else settings).append(pair)
    return settings, overrides


def _epilog() -> str:
    from ..cli_help import action_epilog

    keys_and_examples = action_epilog("automl", HELP).split("\n\nspec files", 1)[0]
    return (keys_and_examples + "\n\nthe spec is a train spec (references/spec_template_train.yaml); the search "
            "space is\nschemas/train.schema.json's automl_default_parameters")


def main(argv: list[str]) -> int:
    """``mask_grounding_dino automl ...`` (the CLI's entry for this command)."""
    import argparse

    from ..automl.settings import load_settings
    from ..cli_help import action_description

    parser = argparse.ArgumentParser(prog="mask_grounding_dino automl", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=action_description("automl", HELP),
                                     epilog=_epilog())
    parser.add_argument("-e", "--experiment_spec_file", "--experiment-spec", dest="spec", default=None,
                        help="YAML spec file of the training to tune")
    parser.add_argument("--automl-spec", "--automl_spec", dest="automl_spec", default=None,
                        help="YAML file of AutoML settings (TAO's automl_settings keys)")
    parser.add_argument("pairs", nargs="*", metavar="key=value",
                        help="AutoML settings (automl_algorithm=asha) and dotted spec overrides (train.num_epochs=2)")
    args = parser.parse_intermixed_args(argv)
    setting_pairs, overrides = split_pairs(args.pairs)
    settings = load_settings(args.automl_spec, setting_pairs)
    _exit_on_sigterm()
    run(args.spec, overrides, settings)
    return 0
