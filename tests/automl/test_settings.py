"""AutoML settings: TAO's names and defaults, one clear line for a mistake (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mask_grounding_dino.automl.algorithms import pruner_for, rungs, sampler_for
from mask_grounding_dino.automl.errors import AutoMLError
from mask_grounding_dino.automl.metric import check_metric, direction_of, summarise
from mask_grounding_dino.automl.settings import AutoMLSettings, load_settings


def test_defaults_are_taos():
    s = AutoMLSettings()
    assert (s.automl_algorithm, s.automl_max_recommendations, s.automl_max_epochs, s.automl_reduction_factor,
            s.automl_max_concurrent, s.automl_population_size, s.automl_max_generations, s.automl_eval_interval,
            s.automl_perturbation_factor, s.metric) == ("bayesian", 20, 27, 3, 4, 10, 20, 10, 1.2, "[bbox] val_mAP@50")


def test_file_then_pairs(tmp_path):
    path = tmp_path / "automl.yaml"
    path.write_text("automl_settings:\n  automl_algorithm: asha\n  automl_max_epochs: 9\n")
    s = load_settings(str(path), ["automl_max_epochs=3", "direction=MINIMIZE"])
    assert (s.automl_algorithm, s.automl_max_epochs, s.direction) == ("asha", 3, "minimize")


@pytest.mark.parametrize("pairs, words", [
    (["automl_max_recomendations=3"], "did you mean automl_max_recommendations"),
    (["automl_algorithm=hyperbnd"], "did you mean hyperband"),
    (["automl_algorithm=bfbo"], "not available"),
    (["automl_max_concurrent=0"], "at least 1"),
    (["automl_perturbation_factor=0.8"], "above 1"),
    (["direction=up"], "allowed maximize, minimize"),
])
def test_bad_settings_name_the_key(pairs, words):
    with pytest.raises(AutoMLError, match=words):
        load_settings(None, pairs)


def test_metric_checks_and_direction():
    check_metric("[segm] val_mAP@50")
    with pytest.raises(AutoMLError, match="did you mean"):
        check_metric("[bbox] val_mAP50")
    assert direction_of("val_loss", None) == "minimize" and direction_of("[bbox] val_mAP@50", None) == "maximize"
    assert direction_of("val_loss", "maximize") == "maximize"  # the setting wins


def test_a_trial_without_the_metric_has_no_value_and_best_prefers_the_later_epoch():
    assert summarise({}, "maximize", "best") is None
    assert summarise({1: 0.2, 2: 0.5, 3: 0.5}, "maximize", "best") == (0.5, 3)
    assert summarise({1: 0.2, 2: 0.5, 3: 0.4}, "maximize", "last") == (0.4, 3)
    assert summarise({1: 0.9, 2: 0.3}, "minimize", "best") == (0.3, 2)


def test_rungs_and_engines_follow_taos_budget():
    assert rungs(27, 3) == [1, 3, 9, 27]
    assert rungs(9, 3) == [1, 3, 9] and rungs(2, 3) == [1, 2]
    import optuna

    asha = load_settings(None, {"automl_algorithm": "asha"})
    assert isinstance(pruner_for(asha), optuna.pruners.SuccessiveHalvingPruner)
    bohb = load_settings(None, {"automl_algorithm": "bohb"})
    assert isinstance(sampler_for(bohb), optuna.samplers.TPESampler)
    assert isinstance(pruner_for(bohb), optuna.pruners.HyperbandPruner)
    assert isinstance(sampler_for(AutoMLSettings()), optuna.samplers.GPSampler)


def test_cli_bad_setting_is_one_line_exit_2(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"results_dir: {tmp_path / 'run'}\n")
    out = subprocess.run([sys.executable, "-m", "mask_grounding_dino", "automl", "-e", str(spec),
                          "automl_algoritm=asha"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "did you mean automl_algorithm" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_saved_settings_file_with_empty_optional_keys_loads(tmp_path):
    path = tmp_path / "automl_settings.yaml"
    path.write_text("automl_algorithm: asha\nautoml_hyperparameters: null\ncustom_param_ranges: null\n"
                    "direction: null\nstorage: null\nseed: null\n")
    s = load_settings(str(path))
    assert (s.automl_algorithm, s.automl_hyperparameters, s.direction, s.seed) == ("asha", None, None, None)


def test_a_spec_that_never_validates_in_time_is_refused_before_anything_runs(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"results_dir: {tmp_path / 'run'}\ntrain:\n  validation_interval: 4\n  num_epochs: 8\n"
                    "dataset:\n  val_data_sources:\n    json_file: val.json\n    image_dir: images\n"
                    "  train_data_sources:\n    - json_file: t.jsonl\n      image_dir: images\n")
    out = subprocess.run([sys.executable, "-m", "mask_grounding_dino", "automl", "-e", str(spec),
                          "automl_algorithm=asha"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "train.validation_interval 4" in out.stderr and "judged at epoch 1" in out.stderr
    assert not (tmp_path / "run").exists()
