"""The Train Action Policy: does a train job go through AutoML or plain training?

``automl_policy`` is per job: ``auto`` (the default), ``on`` or ``off``. With ``auto``, a
train job is an AutoML job when ``automl_enabled: true`` in ``references/skill_info.yaml`` and
the train schema (``schemas/train.schema.json``) and template
(``references/spec_template_train.yaml``) are there; otherwise (``off``, AutoML disabled, or
a file missing, which is reported) it is plain training. ``on`` asks for AutoML whatever
skill_info says (the search space is built from the spec dataclasses either way). The decision
and its reason are recorded on the job; the skill metadata is never changed. An AutoML job runs
``mask_grounding_dino automl`` on its spec (its settings: ``automl_settings.yaml`` in the job's
folder, TAO's defaults otherwise).
"""

from __future__ import annotations

import dataclasses
import os

import yaml

from .errors import JobError

POLICIES = ("auto", "on", "off")
AUTOML, PLAIN = "automl", "plain"
#: The repository root: where ``references/`` and ``schemas/`` are generated.
SKILL_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class PolicyDecision:
    policy: str | None
    decision: str | None
    note: str | None


def _automl_enabled(skill_info: str) -> bool:
    with open(skill_info, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return data.get("automl_enabled") is True


def decide(action: str, policy: str | None = "auto", skill_root: str | None = None) -> PolicyDecision:
    """The policy decision for a new job (``policy`` None for non-train actions)."""
    if action != "train":
        if policy not in (None, "auto"):
            raise JobError(f"automl_policy {policy!r} applies to train jobs only, not {action}")
        return PolicyDecision(None, None, None)
    policy = (policy or "auto").lower()
    if policy not in POLICIES:
        raise JobError(f"automl_policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if policy == "off":
        return PolicyDecision(policy, PLAIN, "plain training")
    if policy == "on":
        return PolicyDecision(policy, AUTOML, "AutoML (automl_policy on)")
    root = skill_root or SKILL_ROOT
    skill_info = os.path.join(root, "references", "skill_info.yaml")
    if not os.path.isfile(skill_info):
        return PolicyDecision(policy, PLAIN, f"plain training: {skill_info} not found, so AutoML is not enabled")
    if not _automl_enabled(skill_info):
        return PolicyDecision(policy, PLAIN, "plain training: automl_enabled is not true in skill_info.yaml")
    missing = [p for p in ("schemas/train.schema.json", "references/spec_template_train.yaml")
               if not os.path.isfile(os.path.join(root, p))]
    if missing:
        return PolicyDecision(policy, PLAIN, f"AutoML enabled but not runnable: {', '.join(missing)} missing; "
                                             "plain training")
    return PolicyDecision(policy, AUTOML, "AutoML (enabled in skill_info; train schema and template present)")
