"""May a training run write into its results folder? Decided before anything there is written.

A folder that already holds a run is continued only when that is what the spec means: the
same architecture (the model keys that change parameter shapes or structure, compared with
the spec saved in the folder and in the checkpoint) and a checkpoint that has not trained
past ``train.num_epochs``. A resume checkpoint named explicitly must be a training
checkpoint of the same architecture, and must not be mixed into a folder holding another
run's checkpoints. Anything else is a :class:`ResultsFolderConflict` (one line, exit 2)
and the folder stays byte-identical; a run that is exactly finished trains nothing.

Epochs in messages are counted from 1 (``epoch 4/8``), as the progress lines count them;
file names keep TAO's 0-based index (``model_epoch_003_...`` is the 4th epoch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from ..errors import UserError
from .checkpoint_io import load_checkpoint_file
from .checkpoints import find_resume_checkpoint, list_checkpoints

#: Model keys that change parameter shapes or the module structure (denoising: see _structure).
STRUCTURE_KEYS = ("backbone", "text_encoder_type", "hidden_dim", "nheads", "dim_feedforward", "enc_layers",
                  "dec_layers", "enc_n_points", "dec_n_points", "num_feature_levels", "return_interm_indices",
                  "num_queries", "two_stage_type", "embed_init_tgt", "pre_norm", "decoder_sa_type", "max_text_len",
                  "class_embed_bias", "has_mask", "num_region_queries")
SAVED_SPEC = "train_spec.yaml"
_TRAINING_KEYS = ("state_dict", "optimizer_states", "loops")


class ResultsFolderConflict(UserError):
    """The results folder holds a run that this spec cannot continue."""


@dataclass(frozen=True)
class Position:
    """Where a training checkpoint stands: ``epoch`` (0-based) of its last step, ``step``, and
    whether that step ended the epoch."""

    epoch: int
    step: int
    ends_epoch: bool

    @property
    def epochs_done(self) -> int:
        return self.epoch + 1 if self.ends_epoch else self.epoch

    def describe(self, num_epochs: int) -> str:
        if self.ends_epoch:
            return f"after epoch {self.epoch + 1}/{num_epochs}, step {self.step}"
        return f"in epoch {self.epoch + 1}/{num_epochs}, step {self.step}"


def checkpoint_position(ckpt: dict) -> Position | None:
    """The position stored by Lightning, or None for a file without training state."""
    if not all(key in ckpt for key in _TRAINING_KEYS):
        return None
    fit = ckpt["loops"].get("fit_loop", {})
    ends_epoch = bool(fit.get("epoch_loop.batch_progress", {}).get("is_last_batch"))
    step = int(ckpt.get("global_step", 0))
    epochs = fit.get("epoch_progress", {}).get("current", {})
    if "completed" not in epochs or "started" not in epochs:
        return Position(int(ckpt.get("epoch", 0)), step, ends_epoch)
    completed = int(epochs["completed"])
    if int(epochs["started"]) > completed:  # saved inside an epoch (after a batch, or at its end)
        return Position(completed, step, ends_epoch)
    # Saved between epochs (when training ended): Lightning's "epoch" already counts the next one.
    return Position(max(completed - 1, 0), step, completed > 0)


@dataclass
class TrainingPlan:
    """What the run will do in ``folder``; ``resume``: the checkpoint it continues from."""

    folder: str
    num_epochs: int
    folder_has_files: bool
    resume: str | None = None
    position: Position | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        """The checkpoint has trained exactly ``num_epochs``: nothing is left to train."""
        return self.position is not None and self.position.ends_epoch and self.position.epochs_done == self.num_epochs

    def first_line(self) -> str:
        if self.finished:
            return (f"train: {self.folder} already holds this run trained to epoch {self.num_epochs}/"
                    f"{self.num_epochs} ({os.path.basename(self.resume)}): nothing left to train; raise "
                    "train.num_epochs to train on, or give a new results_dir for a new run")
        if self.resume:
            return (f"train: resuming in {self.folder} from {self.resume} "
                    f"({self.position.describe(self.num_epochs)})")
        state = "existing folder without checkpoints: logs are appended" if self.folder_has_files else "new folder"
        return f"train: writing to {self.folder} ({state})"


def plan_training(cfg, folder: str) -> TrainingPlan:
    """Read (never write) ``folder`` and the resume checkpoint; raise :class:`ResultsFolderConflict`
    when this spec cannot continue what is there."""
    tc = cfg.train
    num_epochs = int(tc.num_epochs)
    has_files = os.path.isdir(folder) and bool(os.listdir(folder))
    plan = TrainingPlan(folder, num_epochs, has_files)
    _check_saved_spec(folder, cfg.model)
    explicit = tc.resume_training_checkpoint_path or None
    resume = find_resume_checkpoint(folder, explicit)
    if resume is None:
        return plan
    if explicit:
        _check_explicit_belongs(folder, explicit)
    ckpt = load_checkpoint_file(resume, mmap=True)  # mapped: only metadata and shapes are read
    position = checkpoint_position(ckpt)
    if position is None:
        raise ResultsFolderConflict(
            f"{resume}: holds weights without a training state (optimiser, loop position), so training cannot "
            f"resume from it; to start from these weights set train.pretrained_model_path={resume} and leave "
            "train.resume_training_checkpoint_path empty")
    saved = (ckpt.get("hyper_parameters") or {}).get("spec", {}).get("model")
    _check_architecture(saved, cfg.model, f"{folder}: its checkpoint {os.path.basename(resume)}"
                        if not explicit else f"{resume}")
    _check_progress(folder, resume, position, num_epochs)
    plan.resume, plan.position = resume, position
    plan.shapes = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")}
    return plan


def check_model_fits(plan: TrainingPlan, state_dict: dict) -> None:
    """Every parameter of the new model has the checkpoint's shape (a key missed by STRUCTURE_KEYS
    would otherwise stop the run inside Lightning, after the folder was written to)."""
    if not plan.resume:
        return
    ours = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(ours) - set(plan.shapes))
    extra = sorted(set(plan.shapes) - set(ours))
    reshaped = sorted(k for k in set(ours) & set(plan.shapes) if ours[k] != plan.shapes[k])
    if missing or extra or reshaped:
        example = (f"{reshaped[0]} is {list(plan.shapes[reshaped[0]])} there, {list(ours[reshaped[0]])} now"
                   if reshaped else f"{(missing or extra)[0]} is {'missing there' if missing else 'not in this model'}")
        raise ResultsFolderConflict(
            f"{plan.folder}: {plan.resume} is a model of another shape ({len(missing) + len(extra) + len(reshaped)} "
            f"tensors differ, e.g. {example}); give a new results_dir for this model")


def _check_saved_spec(folder: str, model_cfg) -> None:
    path = os.path.join(folder, SAVED_SPEC)
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as handle:
            saved = (yaml.safe_load(handle) or {}).get("model")
    except (OSError, yaml.YAMLError, AttributeError):
        return  # unreadable: the checkpoint check below still applies
    _check_architecture(saved, model_cfg, f"{folder}: its {SAVED_SPEC}")


def _structure(model) -> dict:
    get = model.get if isinstance(model, dict) else (lambda key, default=None: getattr(model, key, default))
    out = {key: _plain(get(key)) for key in STRUCTURE_KEYS if get(key) is not None}
    if get("use_dn") is not None and get("dn_number") is not None:  # only on/off adds a parameter (label_enc)
        out["use_dn and dn_number > 0"] = bool(get("use_dn")) and int(get("dn_number")) > 0
    return out


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _check_architecture(saved: dict | None, model_cfg, where: str) -> None:
    if not isinstance(saved, dict):
        return
    theirs, ours = _structure(saved), _structure(model_cfg)
    differing = [key for key in ours if key in theirs and theirs[key] != ours[key]]
    if differing:
        shown = "; ".join(f"model.{key} {theirs[key]!r} there, {ours[key]!r} now" for key in differing[:3])
        more = f"; {len(differing) - 3} more" if len(differing) > 3 else ""
        raise ResultsFolderConflict(
            f"{where} is another architecture ({shown}{more}); give a new results_dir for this model, or keep "
            "those model keys to continue that run")


def _check_explicit_belongs(folder: str, explicit: str) -> None:
    own = list_checkpoints(folder)
    if not own:
        return
    if os.path.realpath(os.path.dirname(explicit)) == os.path.realpath(folder):
        return
    raise ResultsFolderConflict(
        f"{folder}: holds checkpoints of its own run (newest {os.path.basename(own[-1][2])}); resuming there from "
        f"{explicit} would mix two runs; give a new results_dir for the resumed run, or leave "
        "train.resume_training_checkpoint_path empty to continue the folder's own run")


def _check_progress(folder: str, resume: str, position: Position, num_epochs: int) -> None:
    past = position.epochs_done > num_epochs or (position.epochs_done == num_epochs and not position.ends_epoch)
    if past:
        if position.ends_epoch:
            trained, needed = f"trained {position.epochs_done} epochs", f"above {position.epochs_done}"
        else:
            trained = f"trained into epoch {position.epoch + 1} (step {position.step})"
            needed = f"to at least {position.epoch + 1}"
        raise ResultsFolderConflict(
            f"{folder}: its checkpoint {os.path.basename(resume)} has {trained}, more than train.num_epochs="
            f"{num_epochs}; give a new results_dir for a new run, or set train.num_epochs {needed} to continue "
            "this one")
