"""Spec keys that TAO's schema has but that change nothing: a spec giving one of them a
non-default value gets one warning line saying so and why, once; values the model cannot build
are not offered by the schema."""

from __future__ import annotations

import logging
import pathlib

import pytest
import yaml

from mask_grounding_dino.config import load_spec, validate
from mask_grounding_dino.errors import SpecError

LOGGER = validate.__name__
TEMPLATE = (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "tao" / "tao-skill-bank" / "models"
            / "tao-train-mask-grounding-dino" / "references" / "spec_template_train.yaml")
DEVIATIONS = pathlib.Path(validate.__file__).with_name("deviations.yaml")


@pytest.fixture(autouse=True)
def _fresh_process_memory(monkeypatch):
    """Each test starts as a new process would: nothing reported yet, first process of the machine."""
    monkeypatch.setattr(validate, "_WARNED", set())
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_each_key_without_effect_is_named_with_its_line_and_reason_once(tmp_path, caplog):
    spec = tmp_path / "spec.yaml"
    spec.write_text("encryption_key: nvidia_tlt\n"
                    "model:\n  fix_refpoints_hw: 10\n  clip_max_norm: 0.5\n"
                    "dataset:\n  eval_class_ids: [1, 2]\n"
                    "train:\n  optim:\n    momentum: 0.5\n    monitor_name: train_loss\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_spec(spec)
        load_spec(spec)                  # loaded again (training loads its spec more than once): no repeat
    assert _warnings(caplog) == [
        f"{spec}:3: model.fix_refpoints_hw: 10 has no effect: {validate.NO_EFFECT['model.fix_refpoints_hw']}",
        f"{spec}:4: model.clip_max_norm: 0.5 has no effect: TAO does not read it either; gradient clipping is "
        "train.clip_grad_norm",
        f"{spec}:10: train.optim.monitor_name: 'train_loss' has no effect: "
        f"{validate.NO_EFFECT['train.optim.monitor_name']}",
        f"{spec}:9: train.optim.momentum: 0.5 has no effect: the optimiser is AdamW (TAO's only one), which has no "
        "momentum parameter",
        f"{spec}:6: dataset.eval_class_ids: [1, 2] has no effect: COCO evaluation scores every category (TAO's "
        "Mask Grounding DINO does not read it either)",
        f"{spec}:1: encryption_key: setting it has no effect: model files are plain PyTorch checkpoints, read and "
        "written unencrypted",
    ]
    assert "nvidia_tlt" not in caplog.text            # a key is never repeated in a log


def test_defaults_and_the_tao_template_warn_only_about_what_they_set(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_spec()
        assert _warnings(caplog) == []
        load_spec(TEMPLATE, ["model.clip_max_norm=0.1"])     # the default, given explicitly: nothing to say
    # TAO's template sets eval_class_ids: [1]; every other key without effect keeps its default there.
    assert _warnings(caplog) == [f"{TEMPLATE}:105: dataset.eval_class_ids: [1] has no effect: COCO evaluation "
                                 "scores every category (TAO's Mask Grounding DINO does not read it either)"]


def test_taos_default_encryption_key_is_as_quiet_as_ours(caplog):
    """TAO's templates and its job service write ``tlt_encode``: a spec from TAO gets no warning for it."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_spec(overrides=["encryption_key=tlt_encode"])
        assert _warnings(caplog) == []
        load_spec(overrides=["encryption_key=my_own_key"])
    assert [w.split(": ", 2)[1] for w in _warnings(caplog)] == ["encryption_key"]


def test_overrides_are_named_and_launched_processes_stay_quiet(caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        monkeypatch.setenv("LOCAL_RANK", "1")           # a process Lightning launched for DDP
        load_spec(overrides=["model.clip_max_norm=0.3"])
        assert _warnings(caplog) == []
        monkeypatch.setenv("LOCAL_RANK", "0")
        load_spec(overrides=["model.clip_max_norm=0.3"])
    assert _warnings(caplog)[0].startswith("override 'model.clip_max_norm=0.3': model.clip_max_norm: 0.3 has no")


def test_every_key_without_effect_exists_and_is_listed_in_the_deviation_notes():
    defaults = load_spec()
    notes = {note["topic"] for note in yaml.safe_load(DEVIATIONS.read_text())["notes"]}
    for key in validate.NO_EFFECT:
        validate.get_value(defaults, key)               # raises for a key the spec does not have
        assert key in notes, key


def test_decoder_self_attention_offers_only_what_the_model_builds():
    with pytest.raises(SpecError) as info:
        load_spec(overrides=["model.decoder_sa_type=ca_label"])
    assert info.value.problems == ["override 'model.decoder_sa_type=ca_label': model.decoder_sa_type: 'ca_label' is "
                                   "not allowed; choose one of: sa"]
