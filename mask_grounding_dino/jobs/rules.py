"""Which action may follow which, and the kinds of model file each one passes on.

A job's parent is the job whose model it uses (``parent_model``):

  action           parent actions it accepts      what it takes from the parent
  train            train                          the parent's best checkpoint, as pretrained model
  evaluate         train, quantize, export,       a checkpoint, ONNX file or TensorRT engine
  inference        gen_trt_engine
  export           train, quantize                a PyTorch checkpoint
  quantize         train, export                  a checkpoint (PyTorch back-ends) or ONNX file
  gen_trt_engine   export, quantize               an ONNX file
"""

from __future__ import annotations

from ..config import ACTIONS
from .errors import JobError

PARENTS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "evaluate": ("train", "quantize", "export", "gen_trt_engine"),
    "inference": ("train", "quantize", "export", "gen_trt_engine"),
    "export": ("train", "quantize"),
    "quantize": ("train", "export"),
    "gen_trt_engine": ("export", "quantize"),
}

CHECKPOINT, ONNX, ENGINE = "checkpoint", "onnx", "engine"

#: File kinds each action can take from a parent.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "train": (CHECKPOINT,),
    "evaluate": (CHECKPOINT, ONNX, ENGINE),
    "inference": (CHECKPOINT, ONNX, ENGINE),
    "export": (CHECKPOINT,),
    "quantize": (CHECKPOINT, ONNX),
    "gen_trt_engine": (ONNX,),
}


def file_kind(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".onnx"):
        return ONNX
    if lower.endswith((".engine", ".trt", ".plan")):
        return ENGINE
    return CHECKPOINT


def check_action(action: str) -> str:
    if action not in ACTIONS:
        import difflib

        close = difflib.get_close_matches(action, ACTIONS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise JobError(f"unknown action {action!r}{hint} (actions: {', '.join(ACTIONS)})")
    return action


def check_parent(action: str, parent_action: str, parent_label: str) -> None:
    allowed = PARENTS[action]
    if parent_action not in allowed:
        raise JobError(f"parent job {parent_label} ran {parent_action}; {action} jobs take their model from "
                       f"{' or '.join(allowed)} jobs")
