"""Write a model as ONNX with TAO's input/output names (opset 17, dynamic batch).

Exporter: the TorchScript-based one (``torch.onnx.export(..., dynamo=False)``),
as TAO uses. Reasons, measured with torch 2.14 / onnxscript 0.7:

- the dynamo exporter goes through ``torch.export``, which needs every shape
  to be data-independent; the model builds its level shapes as a tensor and
  reads them back (``.tolist()``), which ``torch.export`` rejects
  (``GuardOnDataDependentSymNode``); tracing records them as constants, which
  is right since the image size is fixed at export;
- the dynamo exporter starts at opset 18 and converts down to the requested 17
  with a fallback converter; the TorchScript exporter writes opset 17 directly.

Deformable attention is written with standard ONNX ops, not TAO's custom
``MultiscaleDeformableAttnPlugin_TRT`` op, so any ONNX runtime runs the file:

- ``msda="gather"`` (default): ``Floor``, ``Gather``, ``Mul``, ``ReduceSum`` only,
  for runtimes without ``GridSample`` (e.g. TensorRT < 8.5);
- ``msda="grid_sample"``: one ``GridSample`` per level (opset >= 16); faster in
  onnxruntime on CPU (one 544x960 encoder attention: ~0.28 s against ~0.46 s,
  2 threads).

A TensorRT-plugin variant (TAO's op) could be added later as a post-pass that
swaps that subgraph for the plugin node.

``symbolics.py`` corrects the exporter's ``floor_divide`` (it truncates), which
otherwise breaks the Swin backbones' window counts in the graph.

The file is written next to its destination and moved into place only after
``onnx.checker`` accepted it, so a failed export never leaves a broken file.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..model.ms_deform_attn import export_backend
from .io_names import BATCH_AXIS, INPUT_NAMES, TEXT_AXIS, TRACE_TEXT_LEN, example_inputs
from .symbolics import exporter_fixes
from .wrapper import OnnxWrapper, discover_outputs

#: Opsets the exported graph is tested with (TAO: 17).
SUPPORTED_OPSETS = range(16, 21)


class ExportError(UserError):
    """An export request that cannot be carried out (bad size, opset, path or channels)."""


@dataclass
class ExportOptions:
    """What to export: image size, opset, batch. Mirrors TAO's ``export`` spec keys."""

    input_size: tuple[int, int] = (544, 960)        # (height, width)
    opset: int = 17
    dynamic_batch: bool = True
    batch_size: int = 1                             # used when dynamic_batch is False
    verbose: bool = False
    msda: str = "gather"                            # deformable attention: gather | grid_sample

    @classmethod
    def from_config(cls, export_cfg) -> "ExportOptions":
        """From the spec's ``export`` section (``input_height``, ``input_width``,
        ``opset_version``, ``batch_size`` (-1 = dynamic), ``verbose``, ``input_channel``)."""
        get = export_cfg.get if isinstance(export_cfg, dict) else (lambda k, d=None: getattr(export_cfg, k, d))
        channels = int(get("input_channel", 3))
        if channels != 3:
            raise ExportError(f"export.input_channel: {channels} is not supported; the model's image input "
                              "has 3 channels (RGB)")
        batch = int(get("batch_size", -1))
        if batch == 0 or batch < -1:
            raise ExportError(f"export.batch_size: {batch} is not allowed; use -1 (dynamic) or a positive size")
        return cls(input_size=(int(get("input_height", 544)), int(get("input_width", 960))),
                   opset=int(get("opset_version", 17)), dynamic_batch=batch == -1,
                   batch_size=max(batch, 1), verbose=bool(get("verbose", False)))


@dataclass
class ExportResult:
    """What was written."""

    path: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_size: tuple[int, int]
    text_len: int
    opset: int
    batch_size: int | None                          # None = dynamic (axis "batch_size")
    msda: str = "gather"
    exporter: str = "torchscript"
    seconds: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        batch = "dynamic" if self.batch_size is None else str(self.batch_size)
        h, w = self.input_size
        return (f"wrote {self.path} (opset {self.opset}, batch {batch}, image {h}x{w}, text {self.text_len} "
                f"tokens, deformable attention as {self.msda}, outputs {', '.join(self.output_names)}) "
                f"in {self.seconds:.1f} s")


def _validate(path: Path, input_size, opset: int, batch_size: int, msda: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ExportError(f"export input size {input_size!r}: expected (height, width), two integers") from None
    if height < 32 or width < 32:
        raise ExportError(f"export input size {height}x{width}: height and width must be at least 32 pixels")
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"export.opset_version: {opset} is not supported; use "
                          f"{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} (TAO uses 17)")
    if batch_size < 1:
        raise ExportError(f"export.batch_size: {batch_size} is not allowed for a fixed batch; use >= 1")
    if msda not in ("gather", "grid_sample"):
        raise ExportError(f"deformable-attention formulation '{msda}' is not supported; use gather or grid_sample")
    if path.is_dir():
        raise ExportError(f"export.onnx_file: '{path}' is a folder; give a file path such as model.onnx")
    return height, width


def model_text_settings(model: nn.Module) -> tuple[int, str]:
    """(text length of the inputs, tokenizer name) for ``model``.

    A ``MaskGroundingDINO`` knows both; other modules get TAO's 256 and bert-base-uncased.
    """
    text_len = int(getattr(model, "max_text_len", 256))
    build = getattr(model, "build_config", None) or {}
    return text_len, str(build.get("text_encoder_type", "bert-base-uncased"))


def _dynamic_axes(output_names: tuple[str, ...], dynamic_batch: bool, dynamic_text: bool) -> dict | None:
    """``dynamic_axes`` for the exporter: the batch (every tensor) and the text length (the text inputs)."""
    axes: dict[str, dict[int, str]] = {}
    if dynamic_batch:
        axes = {name: {0: BATCH_AXIS} for name in INPUT_NAMES + output_names}
    if dynamic_text:
        for name in INPUT_NAMES[1:]:
            axes.setdefault(name, {})[1] = TEXT_AXIS
        axes["text_token_mask"][2] = TEXT_AXIS          # [B, T, T]
    return axes or None


def _declare_output_shapes(graph, shapes: dict[str, tuple[int, ...]], dynamic_batch: bool) -> None:
    """Write the true output shapes into the graph.

    The exporter's shape inference leaves symbolic names on fixed axes and can even reuse
    ``batch_size`` for an axis of equal size; every axis but the batch is static here.
    """
    for output in graph.graph.output:
        dims = output.type.tensor_type.shape.dim
        for axis, size in enumerate(shapes[output.name]):
            dims[axis].Clear()
            if axis == 0 and dynamic_batch:
                dims[axis].dim_param = BATCH_AXIS
            else:
                dims[axis].dim_value = size


@contextlib.contextmanager
def _unchunked(model: nn.Module):
    """Switch off memory chunking (modules with a ``chunk_elements`` budget, e.g. the mask head)
    while tracing: chunk bounds computed from traced sizes would depend on the batch size in
    the graph (overlapping slices at another batch)."""
    saved = [(m, m.chunk_elements) for m in model.modules() if hasattr(m, "chunk_elements")]
    for module, _ in saved:
        module.chunk_elements = 1 << 62
    try:
        yield
    finally:
        for module, value in saved:
            module.chunk_elements = value


@contextlib.contextmanager
def export_mode(model: nn.Module, verbose: bool):
    """Eval mode, TF32 off (TAO does the same), exporter chatter muted unless verbose."""
    was_training = model.training
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    model.eval()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        model.train(was_training)


def export_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] = (544, 960),
                opset: int = 17, dynamic_batch: bool = True, verbose: bool = False, *,
                batch_size: int = 1, msda: str = "gather", dynamic_text: bool = False) -> ExportResult:
    """Export ``model`` to ONNX with TAO's six inputs and named outputs.

    Args:
        model: a ``MaskGroundingDINO`` (or any module with its forward signature returning
            ``GroundingOutputs`` or a dict with TAO's output names).
        path: the ``.onnx`` file to write (atomically; parent folders are created).
        input_size: (height, width) of the ``inputs`` image tensor, fixed in the graph.
        opset: ONNX opset (TAO: 17).
        dynamic_batch: axis 0 of every input/output is the symbolic ``batch_size``; else
            it is fixed to ``batch_size``.
        verbose: print the exporter's graph and warnings.
        batch_size: the fixed batch when ``dynamic_batch`` is False.
        msda: deformable attention as ``"gather"`` (plain ops) or ``"grid_sample"`` (see above).
        dynamic_text: the text inputs' length is a symbolic ``text_len`` axis, so a runner can pad
            captions to the longest instead of ``max_text_len`` (TAO's graphs: fixed 256). The
            outputs keep ``max_text_len`` token columns.

    Returns:
        An :class:`ExportResult`.
    """
    import onnx

    path = Path(path)
    height, width = _validate(path, input_size, opset, batch_size, msda)
    started = time.perf_counter()
    text_len, tokenizer = model_text_settings(model)
    device = next(model.parameters()).device
    # Trace with 2 images when the batch is dynamic: with 1 the tracer could record
    # broadcasts that only hold for a single image.
    trace_batch = 2 if dynamic_batch else batch_size
    # A dynamic text axis is traced at a length no other axis has, so no size is mistaken for it.
    example = example_inputs(trace_batch, (height, width), TRACE_TEXT_LEN if dynamic_text else text_len,
                             tokenizer).to(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with export_mode(model, verbose):
        output_shapes = discover_outputs(model, example.as_tuple())
        output_names = tuple(output_shapes)
        wrapper = OnnxWrapper(model, output_names)
        axes = _dynamic_axes(output_names, dynamic_batch, dynamic_text)
        try:
            with torch.no_grad(), export_backend(msda), exporter_fixes(opset), _unchunked(model):
                torch.onnx.export(wrapper, example.as_tuple(), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=list(INPUT_NAMES), output_names=list(output_names),
                                  dynamic_axes=axes, do_constant_folding=True, verbose=verbose)
            metadata = {"producer": "mask_grounding_dino", "text_encoder_type": tokenizer,
                        "max_text_len": str(text_len), "input_size": f"{height}x{width}", "msda": msda,
                        "text_axis": "dynamic" if dynamic_text else "fixed"}
            graph = onnx.load(str(tmp))
            onnx.helper.set_model_props(graph, metadata)
            _declare_output_shapes(graph, output_shapes, dynamic_batch)
            onnx.save(graph, str(tmp))
            onnx.checker.check_model(str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return ExportResult(path=path, input_names=INPUT_NAMES, output_names=output_names,
                        input_size=(height, width), text_len=text_len, opset=opset,
                        batch_size=None if dynamic_batch else batch_size, msda=msda,
                        seconds=time.perf_counter() - started, metadata=metadata)


def export_with_options(model: nn.Module, path: str | os.PathLike, options: ExportOptions) -> ExportResult:
    """:func:`export_onnx` driven by :class:`ExportOptions` (e.g. ``ExportOptions.from_config(cfg.export)``)."""
    return export_onnx(model, path, options.input_size, options.opset, options.dynamic_batch, options.verbose,
                       batch_size=options.batch_size, msda=options.msda)
