"""``mask_grounding_dino gen_trt_engine -e spec.yaml``: prepare the TensorRT engine build of an ONNX file.

spec (``gen_trt_engine.onnx_file``, ``trt_engine``, ``batch_size``, ``tensorrt.*``) -> checks of
the graph (TAO's inputs, opset, no plugin op, Q/DQ form; ``deploy/trtexec.py``) -> the exact
``trtexec`` command with TAO's optimisation profile, written next to the engine path as
``<engine>.trtexec.txt`` and ``<engine>.build.sh``.

TensorRT is not part of this package, so no engine is built here: the action ends with one line
saying so and where the prepared command is, exit code 2. Run the script on a machine with
TensorRT and an NVIDIA GPU; ``evaluate`` / ``inference`` then need the same to run the engine.
"""

from __future__ import annotations

import os

from ..config import is_unset
from ..deploy.tensorrt import TensorRTUnavailable, is_engine_path
from ..deploy.trtexec import inspect_onnx, trtexec_command, write_build_files
from ..errors import SpecError
from .common import action_results_dir, print_table, save_resolved_spec
from ..utils.log import get_logger

log = get_logger(__name__)

HELP = {
    "summary": "check an ONNX file for TensorRT and write the trtexec command that builds its engine",
    "description": "Check an ONNX file for TensorRT (TAO's inputs, opset, standard ops, Q/DQ form) and write the "
                   "exact trtexec command with TAO's optimisation profile next to the engine path. TensorRT is "
                   "not part of this package: no engine is built, and the action ends with exit code 2.",
    "keys": [
        ("gen_trt_engine.onnx_file", "the ONNX file (from export or quantize)"),
        ("gen_trt_engine.trt_engine", "the engine path (default: <results_dir>/gen_trt_engine/model.engine)"),
        ("gen_trt_engine.tensorrt.data_type", "FP32 or FP16 (a Q/DQ graph builds strongly typed)"),
        ("gen_trt_engine.tensorrt.max_batch_size", "the profile's largest batch (also min_ and opt_batch_size)"),
        ("gen_trt_engine.tensorrt.workspace_size", "builder workspace in MB"),
    ],
    "examples": [
        "mask_grounding_dino gen_trt_engine -e spec.yaml gen_trt_engine.onnx_file=runs/exp1/export/model.onnx",
        "mask_grounding_dino gen_trt_engine -e spec.yaml gen_trt_engine.onnx_file=runs/exp1/export/model.onnx "
        "gen_trt_engine.trt_engine=runs/exp1/gen_trt_engine/model.engine gen_trt_engine.tensorrt.data_type=FP16 "
        "gen_trt_engine.tensorrt.max_batch_size=4",
    ],
}


def _engine_path(cfg, results_dir: str) -> str:
    value = cfg.gen_trt_engine.trt_engine
    path = os.path.join(results_dir, "model.engine") if is_unset(value) or not value else str(value)
    if not is_engine_path(path):
        raise SpecError(f"gen_trt_engine.trt_engine: '{path}' must end with .engine, .trt or .plan")
    return path


def run(cfg) -> int:
    section = cfg.gen_trt_engine
    if is_unset(section.onnx_file) or not section.onnx_file:
        raise SpecError("gen_trt_engine.onnx_file: required; give the .onnx file written by the export action "
                        "(or a quantize output)")
    facts = inspect_onnx(section.onnx_file)
    if facts.text_len != int(cfg.model.max_text_len):
        log.info(f"note: the graph's text length is {facts.text_len} (model.max_text_len is {cfg.model.max_text_len}); "
              "the profile uses the graph's")
    results_dir = action_results_dir(cfg, "gen_trt_engine")
    engine = _engine_path(cfg, results_dir)
    os.makedirs(os.path.dirname(os.path.abspath(engine)), exist_ok=True)
    save_resolved_spec(cfg, results_dir, "gen_trt_engine")
    command = trtexec_command(facts, section, engine)
    text_path, script_path = write_build_files(command, engine)
    height, width = facts.image_size
    batch = (f"fixed {facts.fixed_batch}" if facts.fixed_batch else
             f"{section.tensorrt.min_batch_size}/{section.tensorrt.opt_batch_size}/{section.tensorrt.max_batch_size}"
             if section.batch_size <= 0 else f"fixed {section.batch_size}")
    print_table("TensorRT build prepared", [
        ("onnx file", facts.path), ("opset", str(facts.opset)), ("image", f"{height}x{width} (HxW)"),
        ("text length", str(facts.text_len)), ("batch (min/opt/max)", batch),
        ("precision", "strongly typed (Q/DQ graph)" if facts.qdq_nodes else str(section.tensorrt.data_type).upper()),
        ("command", text_path), ("script", script_path)])
    raise TensorRTUnavailable(f"gen_trt_engine: no engine was built ({engine}): building one needs TensorRT and an "
                              f"NVIDIA GPU; the prepared trtexec command is in {script_path}")
