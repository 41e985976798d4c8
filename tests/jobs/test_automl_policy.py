"""The Train Action Policy: per job, recorded on it, skill metadata untouched."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from mask_grounding_dino.errors import UserError
from mask_grounding_dino.jobs import JobError, Workspace
from mask_grounding_dino.jobs.automl_policy import AUTOML, PLAIN, SKILL_ROOT, decide

SKILL_FILES = ("references/skill_info.yaml", "schemas/train.schema.json", "references/spec_template_train.yaml")


def _skill_copy(tmp_path, leave_out=()):
    for relative in SKILL_FILES:
        if relative not in leave_out:
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f"{SKILL_ROOT}/{relative}", tmp_path / relative)
    return str(tmp_path)


def test_auto_with_our_skill_files_is_automl():
    decision = decide("train")  # default policy: auto
    assert (decision.policy, decision.decision) == ("auto", AUTOML)
    assert decision.note.startswith("AutoML (enabled in skill_info")


def test_on_is_automl_even_when_skill_info_disables_it(tmp_path):
    root = _skill_copy(tmp_path)
    path = tmp_path / "references" / "skill_info.yaml"
    path.write_text(path.read_text().replace("automl_enabled: true", "automl_enabled: false"))
    assert decide("train", "on", root).decision == AUTOML


def test_off_is_plain_training():
    assert (decide("train", "off").decision, decide("train", "OFF").policy) == (PLAIN, "off")


@pytest.mark.parametrize("missing", SKILL_FILES[1:])
def test_a_missing_schema_or_template_is_plain_training_and_said(tmp_path, missing):
    decision = decide("train", "auto", _skill_copy(tmp_path, leave_out=(missing,)))
    assert decision.decision == PLAIN
    assert decision.note.startswith("AutoML enabled but not runnable") and missing in decision.note


def test_automl_disabled_in_skill_info_is_plain_training(tmp_path):
    root = _skill_copy(tmp_path)
    path = tmp_path / "references" / "skill_info.yaml"
    path.write_text(path.read_text().replace("automl_enabled: true", "automl_enabled: false"))
    assert decide("train", "auto", root).decision == PLAIN


def test_the_policy_is_per_job_and_skill_info_never_changes(tmp_path):
    before = hashlib.sha256(open(f"{SKILL_ROOT}/references/skill_info.yaml", "rb").read()).hexdigest()
    ws = Workspace(tmp_path / "ws", start_runner=False)
    auto = ws.create_job("train", start=False)
    off = ws.create_job("train", automl_policy="off", start=False)
    export = ws.create_job("export", spec_overrides={"export.checkpoint": "/m.pth"}, start=False)
    assert (auto.automl_policy, auto.automl_decision) == ("auto", AUTOML)
    assert (off.automl_policy, off.automl_decision) == ("off", PLAIN)
    assert (export.automl_policy, export.automl_decision, export.automl_note) == (None, None, None)
    assert hashlib.sha256(open(f"{SKILL_ROOT}/references/skill_info.yaml", "rb").read()).hexdigest() == before
    with pytest.raises(JobError, match="train jobs only"):
        ws.create_job("export", spec_overrides={"export.checkpoint": "/m.pth"}, automl_policy="off", start=False)
    with pytest.raises(JobError, match="expected one of auto, on, off"):
        ws.create_job("train", automl_policy="maybe", start=False)
    with pytest.raises(JobError, match="trains plainly"):
        ws.create_job("train", automl_policy="off", automl_settings={"automl_algorithm": "asha"}, start=False)
    with pytest.raises(UserError, match="did you mean automl_algorithm"):
        ws.create_job("train", automl_settings={"automl_algoritm": "asha"}, start=False)
    assert ws.count() == 3
