"""Spec-parameter inference: the spec keys a job fills in at launch, TAO's way, with its faults fixed.

Which key gets which function is the ``spec_params`` table of our ``skill_info`` (TAO's
network config for Mask Grounding DINO):

  output_dir              ``results_dir`` <- the job's folder ``<workspace>/results/<job_id>``
  key                     ``encryption_key`` <- TAO's default key ``tlt_encode``
  ptm_if_no_resume_model  ``train.pretrained_model_path`` <- a train parent's model, unless the
                          job resumes from its own checkpoint
  resume_model            ``train.resume_training_checkpoint_path`` <- the job's own latest checkpoint
  parent_model            the parent's model (``outputs["model"]``, see outputs.py)
  create_onnx_file        ``export.onnx_file`` <- ``<job folder>/model.onnx``
  create_engine_file      ``gen_trt_engine.trt_engine`` <- ``<job folder>/model.engine``

Non-train actions drop the pretrained and resume keys. A value the user set is kept, with two
deliberate exceptions: ``results_dir`` and the action's own ``<action>.results_dir`` always name
the job's folder (a job owns its folder; two jobs sharing one would resume from and overwrite
each other's files), and a retried train job resumes from its own latest checkpoint rather
than restarting from a ``resume_training_checkpoint_path`` it has already trained past.

Where TAO differs (and is wrong): a train parent's model is the checkpoint with the best
``[bbox] val_mAP@50`` (TAO means to, but a regex bug makes it the latest); an export parent
gives the ONNX file it wrote (TAO: the first ``.onnx`` listed); evaluate / inference fill
``checkpoint`` or ``trt_engine`` by the file's type (TAO writes the same path into both).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..config import get_value, is_unset
from ..config.skill_info import build_skill_info
from . import artifacts, rules
from .errors import JobError
from .job import Job
from .specs import default_value, set_value

TAO_KEY = "tlt_encode"
PRETRAINED_KEYS = ("model.pretrained_backbone_path", "train.pretrained_model_path")
RESUME_KEY = "train.resume_training_checkpoint_path"


@dataclasses.dataclass
class _Context:
    cfg: Any
    action: str
    job_dir: str
    parent: Job | None

    def get(self, key: str) -> Any:
        return get_value(self.cfg, key)

    def record(self, key: str, function: str, value: Any = None, note: str = "") -> dict:
        if value is not None:
            set_value(self.cfg, key, value)
        return {"key": key, "function": function, "value": value, "note": note}

    def parent_model(self) -> str:
        parent = self.parent
        model = (parent.outputs or {}).get("model")
        if not model:
            raise JobError(f"parent job {parent.label} left no model file for this {self.action} job "
                           f"({(parent.outputs or {}).get('model_note') or 'its outputs name none'})")
        kind = rules.file_kind(model)
        if kind not in rules.ACCEPTS[self.action]:
            raise JobError(f"parent job {parent.label} gives a {kind} file ({model}); a {self.action} job needs "
                           f"a {' or '.join(rules.ACCEPTS[self.action])} file")
        return model


def _output_dir(ctx: _Context, key: str) -> dict:
    notes = []
    given = ctx.get(key)
    if not is_unset(given) and os.path.abspath(str(given)) != ctx.job_dir:
        notes.append(f"the spec's {given!r} replaced: each job writes into its own folder")
    own_key = f"{ctx.action}.results_dir"
    if not is_unset(ctx.get(own_key)):
        notes.append(f"{own_key} {ctx.get(own_key)!r} cleared for the same reason")
        set_value(ctx.cfg, own_key, default_value(own_key))
    return ctx.record(key, "output_dir", ctx.job_dir, "; ".join(notes))


def _key(ctx: _Context, key: str) -> dict:
    if not is_unset(ctx.get(key)):
        return ctx.record(key, "key", note="set in the spec")
    return ctx.record(key, "key", TAO_KEY, "TAO's default key")


def _own_checkpoint(ctx: _Context) -> str | None:
    folder = artifacts.train_folder(ctx.job_dir)
    return artifacts.latest_checkpoint(folder) if folder else None


def _ptm_if_no_resume_model(ctx: _Context, key: str) -> dict:
    if _own_checkpoint(ctx):
        return ctx.record(key, "ptm_if_no_resume_model", note="not used: the job resumes from its own checkpoint")
    if not is_unset(ctx.get(key)):
        return ctx.record(key, "ptm_if_no_resume_model", note="set in the spec")
    if key == "train.pretrained_model_path" and ctx.parent is not None:
        return ctx.record(key, "ptm_if_no_resume_model", ctx.parent_model(), f"model of parent job {ctx.parent.label}")
    return ctx.record(key, "ptm_if_no_resume_model", note="none (no parent job gives one)")


def _resume_model(ctx: _Context, key: str) -> dict:
    own = _own_checkpoint(ctx)
    if own:
        note = "" if is_unset(ctx.get(key)) else f"the spec's {ctx.get(key)!r} was this job's starting point"
        return ctx.record(key, "resume_model", own, note or "the job's own latest checkpoint")
    if not is_unset(ctx.get(key)):
        return ctx.record(key, "resume_model", note="set in the spec")
    return ctx.record(key, "resume_model", note="none yet (first run of this job)")


def _parent_model(ctx: _Context, key: str) -> dict:
    if ctx.action in ("evaluate", "inference"):
        given = [k for k in (f"{ctx.action}.checkpoint", f"{ctx.action}.trt_engine") if not is_unset(ctx.get(k))]
        if given:
            return ctx.record(given[0], "parent_model", note="set in the spec")
        if ctx.parent is None:
            return ctx.record(key, "parent_model", note="no parent job")
        model = ctx.parent_model()
        target = f"{ctx.action}.trt_engine" if rules.file_kind(model) == rules.ENGINE else f"{ctx.action}.checkpoint"
        return ctx.record(target, "parent_model", model, f"model of parent job {ctx.parent.label}")
    if not is_unset(ctx.get(key)):
        return ctx.record(key, "parent_model", note="set in the spec")
    if ctx.parent is None:
        return ctx.record(key, "parent_model", note="no parent job")
    return ctx.record(key, "parent_model", ctx.parent_model(), f"model of parent job {ctx.parent.label}")


def _created_file(name: str, function: str):
    def create(ctx: _Context, key: str) -> dict:
        if not is_unset(ctx.get(key)):
            return ctx.record(key, function, note="set in the spec")
        return ctx.record(key, function, os.path.join(ctx.job_dir, name))
    return create


FUNCTIONS = {"output_dir": _output_dir, "key": _key, "ptm_if_no_resume_model": _ptm_if_no_resume_model,
             "resume_model": _resume_model, "parent_model": _parent_model,
             "create_onnx_file": _created_file("model.onnx", "create_onnx_file"),
             "create_engine_file": _created_file("model.engine", "create_engine_file")}


def spec_param_table(action: str) -> dict[str, str]:
    """Spec key -> function name for ``action`` (``results_dir`` first: the others look in it)."""
    table = dict(build_skill_info()["spec_params"][action])
    return {"results_dir": table.pop("results_dir"), **table}


def fill_spec(cfg: Any, action: str, job_dir: str, parent: Job | None) -> list[dict]:
    """Complete ``cfg`` in place for a launch; returns one record per key considered
    (``{"key", "function", "value", "note"}``, ``value`` None where nothing was set).

    Raises ``JobError`` when the parent gives no usable model."""
    ctx = _Context(cfg, action, os.path.abspath(job_dir), parent)
    filled = [FUNCTIONS[function](ctx, key) for key, function in spec_param_table(action).items()]
    if action != "train":
        for key in (*PRETRAINED_KEYS, RESUME_KEY):
            given = ctx.get(key)
            if not is_unset(given):
                set_value(cfg, key, default_value(key))
                filled.append({"key": key, "function": "drop", "value": None,
                               "note": f"dropped {given!r}: {action} does not train"})
    return filled
