"""Prepare a TensorRT engine build: check the ONNX file, write the exact ``trtexec`` command.

Building needs TensorRT and an NVIDIA GPU. ``gen_trt_engine`` checks the graph here and writes,
next to the requested engine path, ``<engine>.trtexec.txt`` (the command line) and
``<engine>.build.sh`` (a script running it), so the build is one command on the GPU machine.

The optimisation profile is TAO's: ``inputs`` ``(B, 3, H, W)`` with H, W from the ONNX file;
``text_token_mask`` ``(B, L, L)``; ``input_ids``, ``attention_mask``, ``position_ids``,
``token_type_ids`` ``(B, L)``; L = the graph's text length (``model.max_text_len``); B over
``tensorrt.min/opt/max_batch_size`` (all ``gen_trt_engine.batch_size`` when that is set).
Precision: ``tensorrt.data_type`` FP32 or FP16 (``--fp16``); a Q/DQ graph (ModelOpt's) is
built ``--stronglyTyped``: every tensor's type comes from the graph, no precision flags.
Workspace: ``tensorrt.workspace_size`` MB (``--memPoolSize=workspace:<N>M``).

Checks (one line each, exit code 2): TAO's six inputs, an opset TensorRT parses, no custom
(plugin) op, and Q/DQ TensorRT accepts: signed int8 (or float8) with zero point 0. The CPU
INT8 graph (unsigned 8-bit activations with zero points) is onnxruntime's and is refused.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass, field

import numpy as np

from ..errors import SpecError
from ..export.io_names import INPUT_NAMES
from ..utils.atomic import atomic_write_text

#: Opsets TensorRT 10's ONNX parser reads (the export writes 17).
TRT_OPSETS = range(9, 21)
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_SIGNED = {3: "int8", 17: "float8e4m3fn", 19: "float8e5m2"}      # onnx.TensorProto data types


class OnnxNotBuildable(SpecError):
    """An ONNX file TensorRT would not build as given."""


@dataclass
class OnnxFacts:
    path: str
    opset: int
    inputs: dict[str, list]                  # name -> dims (int or symbolic name)
    qdq_nodes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def image_size(self) -> tuple[int, int]:
        dims = self.inputs["inputs"]
        return int(dims[2]), int(dims[3])

    @property
    def text_len(self) -> int:
        return int(self.inputs["input_ids"][1])

    @property
    def fixed_batch(self) -> int | None:
        first = self.inputs["inputs"][0]
        return first if isinstance(first, int) else None


def _zero_point_problems(graph, values: dict) -> list[str]:
    """One line per kind of Q/DQ TensorRT refuses (unsigned types, non-zero zero points), with a count."""
    unsigned, shifted = [], []
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zero = values.get(node.input[2]) if len(node.input) > 2 else (2, np.zeros(1))   # no zero point: uint8
        if zero is None:
            continue
        dtype, array = zero
        if dtype not in _SIGNED:
            unsigned.append(node.name)
        elif np.any(array != 0):
            shifted.append(node.name)
    problems = []
    if unsigned:
        problems.append(f"{len(unsigned)} QuantizeLinear nodes (e.g. '{unsigned[0]}') quantise to an unsigned type; "
                        "TensorRT builds signed int8 / float8 with zero point 0 only (this is onnxruntime's CPU "
                        "INT8 form: for TensorRT use the modelopt.pytorch or modelopt.onnx output)")
    if shifted:
        problems.append(f"{len(shifted)} QuantizeLinear nodes (e.g. '{shifted[0]}') have a non-zero zero point; "
                        "TensorRT needs symmetric quantisation (zero point 0)")
    return problems


def inspect_onnx(path: str | os.PathLike, key: str = "gen_trt_engine.onnx_file") -> OnnxFacts:
    """Read ``path`` (without weights) and check it for TensorRT; raises :class:`OnnxNotBuildable`."""
    import onnx
    from onnx import numpy_helper

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OnnxNotBuildable(f"{key}: '{path}' does not exist")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf raises its own types for a non-ONNX file
        raise OnnxNotBuildable(f"{key}: '{path}' is not an ONNX file ({type(exc).__name__})") from None
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    stored = {i.name for i in graph.initializer}
    inputs = {i.name: [d.dim_value if d.dim_value else (d.dim_param or "?") for d in i.type.tensor_type.shape.dim]
              for i in graph.input if i.name not in stored}
    facts = OnnxFacts(path, opset, inputs)
    if tuple(inputs) != INPUT_NAMES:
        facts.problems.append(f"inputs are {list(inputs)}; Mask Grounding DINO's are {list(INPUT_NAMES)} (write "
                              "the file with the export action)")
        raise OnnxNotBuildable(f"{key}: '{path}': {facts.problems[0]}")
    if opset not in TRT_OPSETS:
        facts.problems.append(f"opset {opset} is outside what TensorRT's ONNX parser reads "
                              f"({TRT_OPSETS.start}..{TRT_OPSETS.stop - 1}); export with export.opset_version=17")
    if not all(isinstance(d, int) for d in inputs["inputs"][1:]):
        facts.problems.append("the image input has no fixed height/width; export with export.input_width/height")
    custom = sorted({f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in ("", "ai.onnx")})
    if custom:
        facts.problems.append(f"custom ops {custom[:4]} need TensorRT plugins; export with plain ops (the export "
                              "action writes deformable attention as Gather/Mul/ReduceSum)")
    facts.qdq_nodes = sum(n.op_type in _QDQ for n in graph.node)
    if facts.qdq_nodes:
        values = {i.name: (i.data_type, numpy_helper.to_array(i)) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
                t = node.attribute[0].t
                values[node.output[0]] = (t.data_type, numpy_helper.to_array(t))
        facts.problems += _zero_point_problems(graph, values)
    if facts.problems:
        raise OnnxNotBuildable([f"{key}: '{path}': {p}" for p in facts.problems])
    return facts


def _shapes(facts: OnnxFacts, batch: int) -> str:
    (height, width), length = facts.image_size, facts.text_len
    dims = {"inputs": f"{batch}x3x{height}x{width}", "text_token_mask": f"{batch}x{length}x{length}"}
    return ",".join(f"{name}:{dims.get(name, f'{batch}x{length}')}" for name in INPUT_NAMES)


def trtexec_command(facts: OnnxFacts, section, engine_path: str) -> list[str]:
    """The ``trtexec`` argument list for ``gen_trt_engine`` section ``section`` (see the module docstring)."""
    trt = section.tensorrt
    command = ["trtexec", f"--onnx={os.path.abspath(facts.path)}", f"--saveEngine={os.path.abspath(engine_path)}",
               f"--memPoolSize=workspace:{int(trt.workspace_size)}M"]
    if facts.fixed_batch is None:
        fixed = int(section.batch_size) if int(section.batch_size) > 0 else None
        low, opt, high = (fixed,) * 3 if fixed else (trt.min_batch_size, trt.opt_batch_size, trt.max_batch_size)
        command += [f"--minShapes={_shapes(facts, low)}", f"--optShapes={_shapes(facts, opt)}",
                    f"--maxShapes={_shapes(facts, high)}"]
    if facts.qdq_nodes:
        command.append("--stronglyTyped")
    else:
        if str(trt.data_type).upper() == "FP16":
            command.append("--fp16")
        if trt.layers_precision:
            command += ["--precisionConstraints=obey",
                        "--layerPrecisions=" + ",".join(str(p) for p in trt.layers_precision)]
    if section.timing_cache:
        command.append(f"--timingCacheFile={section.timing_cache}")
    if section.verbose:
        command.append("--verbose")
    return command


def write_build_files(command: list[str], engine_path: str) -> tuple[str, str]:
    """``<engine>.trtexec.txt`` and an executable ``<engine>.build.sh``; returns both paths."""
    line = " ".join(shlex.quote(part) for part in command)
    engine_path = os.path.abspath(engine_path)
    text_path, script_path = f"{engine_path}.trtexec.txt", f"{engine_path}.build.sh"
    atomic_write_text(text_path, line + "\n")
    atomic_write_text(script_path, "#!/bin/sh\n# Builds the TensorRT engine on a machine with TensorRT (trtexec on "
                                   "PATH) and an NVIDIA GPU.\nset -e\nexec " + line + "\n")
    os.chmod(script_path, os.stat(script_path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return text_path, script_path
