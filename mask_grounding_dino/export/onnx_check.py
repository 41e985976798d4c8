"""Run an exported ONNX file in onnxruntime and compare it with the PyTorch model.

Query order caveat: the decoder's queries are the top-``Q`` encoder proposals,
sorted by score. Two proposals whose scores differ by less than the float
noise between two runtimes (~1e-6) can swap places, or trade the last place;
that moves whole rows of ``pred_logits``/``pred_boxes``/``pred_masks`` without
anything being wrong. With random weights and 900 queries out of ~10k
proposals (TAO's 544x960), 2 to 4 rows per image do (measured; swapping two
float-equivalent deformable-attention backends inside PyTorch moves as many). So query
outputs are compared on the rows whose box agrees, and the number of rows that
do not is reported; ``max_moved_queries`` says how many may move (0 = strict).

Tolerance: ``|onnx - torch| <= atol + rtol * |torch|`` element by element (numpy's
``allclose`` rule). The relative part matters for a trained model's mask logits, which reach
several hundred: float32 rounding through ~20 layers then leaves ~1e-3 absolute (7e-6 relative
on the quickstart model) where logits and boxes of order 1-10 differ by ~1e-5.
"""

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

#: Outputs whose axis 1 is the query.
QUERY_OUTPUTS = ("pred_logits", "pred_boxes", "pred_masks")


@dataclass
class OutputDiff:
    """One output at one batch size: PyTorch against onnxruntime."""

    batch: int
    name: str
    shape: tuple[int, ...]
    max_abs_diff: float          # over positions finite in both; inf on shape mismatch
    nonfinite_match: bool        # -inf (padded tokens) at the same places in both
    same_query_diff: float | None = None   # query outputs: over the rows holding the same query
    #: max of |diff| - rtol * |torch value| (over the same rows as the check); None = max_abs_diff
    excess: float | None = None


@dataclass
class OnnxCheckReport:
    path: Path
    atol: float
    rtol: float = 0.0
    max_moved_queries: float = 0.0                               # allowed fraction of moved query rows
    diffs: list[OutputDiff] = field(default_factory=list)
    moved_queries: dict[int, tuple[int, int]] = field(default_factory=dict)   # batch -> (moved, total)

    @property
    def max_abs_diff(self) -> float:
        return max((d.max_abs_diff for d in self.diffs), default=0.0)

    @property
    def ok(self) -> bool:
        values_ok = all(d.nonfinite_match and self._checked(d) <= self.atol for d in self.diffs)
        moved_ok = all(moved <= self.max_moved_queries * total for moved, total in self.moved_queries.values())
        return bool(self.diffs) and values_ok and moved_ok

    @staticmethod
    def _checked(d: OutputDiff) -> float:
        if d.excess is not None:
            return d.excess
        return d.max_abs_diff if d.same_query_diff is None else d.same_query_diff

    def summary(self) -> str:
        tolerance = f"{self.atol:g}" + (f" + {self.rtol:g} x |value|" if self.rtol else "")
        lines = [f"onnxruntime vs PyTorch for {self.path} (tolerance {tolerance}): "
                 f"{'OK' if self.ok else 'MISMATCH'}"]
        for batch, (moved, total) in self.moved_queries.items():
            if moved:
                lines.append(f"  batch {batch}: {moved} of {total} query rows differ (proposal near-ties; "
                             f"allowed {self.max_moved_queries * total:g}); compared on the others")
        for d in self.diffs:
            flag = "" if d.nonfinite_match else "  (non-finite positions differ)"
            moved = self.moved_queries.get(d.batch, (0, 0))[0]
            if d.same_query_diff is not None and moved:
                flag = f", same-query rows {d.same_query_diff:.3g}" + flag
            lines.append(f"  batch {d.batch} {d.name:<18} {str(list(d.shape)):<22} "
                         f"max |diff| {d.max_abs_diff:.3g}{flag}")
        return "\n".join(lines)


def _static_dims(session, name: str) -> list:
    (node,) = [i for i in session.get_inputs() if i.name == name]
    return list(node.shape)


def _compare(ours: np.ndarray, theirs: np.ndarray, rtol: float = 0.0) -> tuple[float, bool, float]:
    """(max |diff|, non-finite positions agree, max of |diff| - rtol * |ours|) over finite positions."""
    if ours.shape != theirs.shape:
        return float("inf"), False, float("inf")
    finite = np.isfinite(ours) & np.isfinite(theirs)
    same_nonfinite = bool(np.array_equal(np.isfinite(ours), np.isfinite(theirs))
                          and np.array_equal(ours[~finite], theirs[~finite]))
    if not finite.any():
        return 0.0, same_nonfinite, 0.0
    reference = ours[finite].astype(np.float64)
    diff = np.abs(reference - theirs[finite])
    return float(diff.max()), same_nonfinite, float((diff - rtol * np.abs(reference)).max())


def check_onnx(model: nn.Module, path: str | os.PathLike, batch_sizes: tuple[int, ...] = (1, 2),
               atol: float = 1e-3, seed: int = 0, max_moved_queries: float = 0.0, rtol: float = 1e-4,
               providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> OnnxCheckReport:
    """Compare onnxruntime's outputs of ``path`` with ``model``'s on the same random inputs.

    Image size and text length are read from the ONNX file. A file with a fixed batch is
    checked at that batch only. ``max_moved_queries``: fraction of query rows that may
    differ because of proposal near-ties (see the module docstring); 0 = every row must match.
    ``atol`` / ``rtol``: per element, ``|diff| <= atol + rtol * |PyTorch value|``. For a graph with
    Q/DQ nodes (a quantised model), ``atol`` is at least one step of its coarsest activation quantiser.
    Returns a report (``.ok``, ``.max_abs_diff``, ``.summary()``).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file '{path}' does not exist")
    from ..quantize.onnx_session import activation_step, session_options

    # A quantiser input within float rounding of a rounding boundary may round one int8 step the other way
    # in onnxruntime than in PyTorch's fake quantisation: allow that step (0 for a float graph).
    atol = max(atol, activation_step(path))
    session = ort.InferenceSession(str(path), session_options(path), providers=list(providers))
    names = tuple(o.name for o in session.get_outputs())
    image_dims = _static_dims(session, INPUT_NAMES[0])            # [B, 3, H, W]
    text_len = int(_static_dims(session, INPUT_NAMES[1])[1])
    height, width = int(image_dims[2]), int(image_dims[3])
    if isinstance(image_dims[0], int):                               # fixed batch
        batch_sizes = (image_dims[0],)
    _, tokenizer = model_text_settings(model)
    device = next(model.parameters()).device
    wrapper = OnnxWrapper(model, names)
    report = OnnxCheckReport(path=path, atol=atol, rtol=rtol, max_moved_queries=max_moved_queries)
    with export_mode(model, verbose=True), torch.no_grad():
        for batch in batch_sizes:
            example = example_inputs(batch, (height, width), text_len, tokenizer, seed=seed + batch)
            expected = dict(zip(names, (t.float().cpu().numpy() for t in wrapper(*example.to(device).as_tuple()))))
            got = dict(zip(names, session.run(list(names), example.as_numpy())))
            same = None                                              # [B, Q] rows holding the same query
            if "pred_boxes" in names and expected["pred_boxes"].shape == got["pred_boxes"].shape:
                same = np.abs(expected["pred_boxes"] - got["pred_boxes"]).max(-1) <= atol
                report.moved_queries[batch] = (int((~same).sum()), int(same.size))
            for name in names:
                ours, theirs = expected[name], got[name]
                diff, agree, excess = _compare(ours, theirs, rtol)
                same_diff = None
                if same is not None and name in QUERY_OUTPUTS and ours.shape == theirs.shape \
                        and ours.shape[:2] == same.shape:
                    same_diff, _, excess = _compare(ours[same], theirs[same], rtol)
                report.diffs.append(OutputDiff(batch, name, tuple(got[name].shape), diff, agree, same_diff,
                                               excess))
    return report
