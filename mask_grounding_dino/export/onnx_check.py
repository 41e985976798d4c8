"""Run an exported ONNX file in onnxruntime and compare it with the PyTorch model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .io_names import INPUT_NAMES, example_inputs
from .onnx_export import ExportError, export_mode, model_text_settings
from .wrapper import OnnxWrapper


@dataclass
class OutputDiff:
    """One output at one batch size: PyTorch against onnxruntime."""

    batch: int
    name: str
    shape: tuple[int, ...]
    max_abs_diff: float          # over positions finite in both; inf when shapes differ
    nonfinite_match: bool        # -inf (padded tokens) at the same places in both


@dataclass
class OnnxCheckReport:
    path: Path
    atol: float
    diffs: list[OutputDiff] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((d.max_abs_diff for d in self.diffs), default=0.0)

    @property
    def ok(self) -> bool:
        return bool(self.diffs) and all(d.nonfinite_match and d.max_abs_diff <= self.atol for d in self.diffs)

    def summary(self) -> str:
        lines = [f"onnxruntime vs PyTorch for {self.path} (tolerance {self.atol:g}): "
                 f"{'OK' if self.ok else 'MISMATCH'}"]
        for d in self.diffs:
            flag = "" if d.nonfinite_match else "  (non-finite positions differ)"
            lines.append(f"  batch {d.batch} {d.name:<18} {str(list(d.shape)):<22} "
                         f"max |diff| {d.max_abs_diff:.3g}{flag}")
        return "\n".join(lines)


def _static_dims(session, name: str) -> list:
    (node,) = [i for i in session.get_inputs() if i.name == name]
    return list(node.shape)


def _compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, bool]:
    if ours.shape != theirs.shape:
        return float("inf"), False
    finite = np.isfinite(ours) & np.isfinite(theirs)
    same_nonfinite = bool(np.array_equal(np.isfinite(ours), np.isfinite(theirs))
                          and np.array_equal(ours[~finite], theirs[~finite]))
    diff = float(np.abs(ours[finite].astype(np.float64) - theirs[finite]).max()) if finite.any() else 0.0
    return diff, same_nonfinite


def check_onnx(model: nn.Module, path: str | os.PathLike, batch_sizes: tuple[int, ...] = (1, 2),
               atol: float = 1e-3, seed: int = 0,
               providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> OnnxCheckReport:
    """Compare onnxruntime's outputs of ``path`` with ``model``'s on the same random inputs.

    Image size and text length are read from the ONNX file. A file with a fixed batch is
    checked at that batch only. Returns a report (``.ok``, ``.max_abs_diff``, ``.summary()``).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file '{path}' does not exist")
    session = ort.InferenceSession(str(path), providers=list(providers))
    names = tuple(o.name for o in session.get_outputs())
    image_dims = _static_dims(session, INPUT_NAMES[0])            # [B, 3, H, W]
    text_len = int(_static_dims(session, INPUT_NAMES[1])[1])
    height, width = int(image_dims[2]), int(image_dims[3])
    if isinstance(image_dims[0], int):                               # fixed batch
        batch_sizes = (image_dims[0],)
    _, tokenizer = model_text_settings(model)
    device = next(model.parameters()).device
    wrapper = OnnxWrapper(model, names)
    report = OnnxCheckReport(path=path, atol=atol)
    with export_mode(model, verbose=True), torch.no_grad():
        for batch in batch_sizes:
            example = example_inputs(batch, (height, width), text_len, tokenizer, seed=seed + batch)
            expected = [t.float().cpu().numpy() for t in wrapper(*example.to(device).as_tuple())]
            got = session.run(list(names), example.as_numpy())
            for name, ours, theirs in zip(names, expected, got):
                diff, same = _compare(ours, theirs)
                report.diffs.append(OutputDiff(batch, name, tuple(theirs.shape), diff, same))
    return report
