"""ONNX export with TAO's interface, checked against onnxruntime.

A small module with TAO's forward signature (built on our deformable attention)
exercises the exporter's machinery cheaply; the small model is exported for real
at two image sizes with a dynamic batch and compared at batch 1 and 2.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mask_grounding_dino.export import (BATCH_AXIS, INPUT_NAMES, ExportError, ExportOptions, check_onnx,
                                        example_inputs, export_onnx)
from mask_grounding_dino.model.ms_deform_attn import MultiScaleDeformableAttention

SHAPES = [(8, 12), (4, 6)]


def perturb_(module: nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Noise on every parameter so zero-initialised layers do not hide mistakes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)


class AttentionOnly(nn.Module):
    """Deformable attention alone, with a fixed backend."""

    def __init__(self, backend: str):
        super().__init__()
        self.attn = MultiScaleDeformableAttention(16, num_levels=2, num_heads=2, num_points=3, backend=backend)
        self.register_buffer("shapes", torch.tensor(SHAPES))

    def forward(self, query, reference, value):
        return self.attn(query, reference, value, self.shapes)


class TinyGrounding(nn.Module):
    """TAO's six inputs -> pred_logits [B,Q,T] (-inf at padding) and pred_boxes [B,Q,4].

    Uses every input (an unused one would vanish from the graph) and deformable attention.
    """

    max_text_len = 32

    def __init__(self, dim: int = 16, queries: int = 6):
        super().__init__()
        self.level0 = nn.Conv2d(3, dim, 8, stride=8)
        self.level1 = nn.Conv2d(dim, dim, 2, stride=2)
        self.words = nn.Embedding(30522, dim)
        self.positions = nn.Embedding(self.max_text_len, dim)
        self.types = nn.Embedding(2, dim)
        self.queries = nn.Parameter(torch.randn(queries, dim))
        self.refs = nn.Parameter(torch.rand(queries, 2))
        self.attn = MultiScaleDeformableAttention(dim, num_levels=2, num_heads=2, num_points=2)
        self.box = nn.Linear(dim, 4)

    def forward(self, inputs, input_ids, attention_mask, position_ids, token_type_ids, text_token_mask):
        f0 = self.level0(inputs)
        f1 = self.level1(f0)
        shapes = torch.as_tensor([f0.shape[-2:], f1.shape[-2:]])
        value = torch.cat([f0.flatten(2), f1.flatten(2)], 2).transpose(1, 2)
        tokens = self.words(input_ids) + self.positions(position_ids) + self.types(token_type_ids)
        # Phrase-mask smoothing: each token averages the tokens it may attend to.
        mask = text_token_mask.float()
        text = mask @ tokens / mask.sum(-1, keepdim=True).clamp(min=1)
        batch = inputs.shape[0]
        query = self.queries.expand(batch, -1, -1) + text.mean(1, keepdim=True)
        refs = self.refs.expand(batch, -1, -1)[:, :, None].expand(-1, -1, 2, -1)
        hidden = self.attn(query, refs, value, shapes)
        logits = (hidden @ text.transpose(1, 2)).masked_fill(~attention_mask[:, None], float("-inf"))
        return {"pred_logits": logits, "pred_boxes": self.box(hidden).sigmoid()}


def ort_session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.filterwarnings("ignore::UserWarning")     # the exporter's tracing chatter
@pytest.mark.parametrize("backend", ["gather", "grid_sample"])
def test_attention_exports_with_dynamic_batch_and_runs_in_onnxruntime(tmp_path, backend):
    torch.manual_seed(0)
    module = AttentionOnly(backend).eval()
    perturb_(module, 0.3)
    gen = torch.Generator().manual_seed(1)

    def inputs(batch):
        return (torch.randn(batch, 5, 16, generator=gen), torch.rand(batch, 5, 2, 2, generator=gen),
                torch.randn(batch, 120, 16, generator=gen))

    path = tmp_path / "attn.onnx"
    names = ["query", "reference", "value"]
    with torch.no_grad():
        torch.onnx.export(module, inputs(2), str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["out"], dynamic_axes={n: {0: "b"} for n in names + ["out"]})
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ("GridSample" in ops) == (backend == "grid_sample")
    session = ort_session(path)
    for batch in (1, 3):
        feed = inputs(batch)
        got = session.run(None, dict(zip(names, (t.numpy() for t in feed))))[0]
        with torch.no_grad():
            want = module(*feed).numpy()
        # Same float32 formula, different kernels: a few ulp of O(1) values.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_export_writes_tao_interface_and_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = TinyGrounding()
    result = export_onnx(model, tmp_path / "sub" / "tiny.onnx", input_size=(64, 96))
    assert result.path.is_file() and result.output_names == ("pred_logits", "pred_boxes")
    graph = onnx.load(str(result.path))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    types = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input}
    assert list(dims) == list(INPUT_NAMES)
    assert dims["inputs"] == [BATCH_AXIS, 3, 64, 96]
    assert dims["text_token_mask"] == [BATCH_AXIS, 32, 32]
    assert types["attention_mask"] == types["text_token_mask"] == onnx.TensorProto.BOOL
    assert types["input_ids"] == onnx.TensorProto.INT64
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.graph.output}
    assert outs == {"pred_logits": [BATCH_AXIS, 6, 32], "pred_boxes": [BATCH_AXIS, 6, 4]}
    assert graph.opset_import[0].version == 17
    assert {p.key: p.value for p in graph.metadata_props}["text_encoder_type"] == "bert-base-uncased"
    report = check_onnx(model, result.path, batch_sizes=(1, 3))
    assert report.ok, report.summary()
    assert [(d.batch, d.name) for d in report.diffs] == [(1, "pred_logits"), (1, "pred_boxes"),
                                                        (3, "pred_logits"), (3, "pred_boxes")]
    assert model.training   # export and check restore the mode they found


@pytest.mark.parametrize("msda", ["gather", "grid_sample"])
def test_deformable_attention_formulation_is_chosen_at_export(tmp_path, msda):
    model = TinyGrounding()
    assert model.attn.backend == "auto"
    result = export_onnx(model, tmp_path / "tiny.onnx", input_size=(64, 64), msda=msda)
    ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert ("GridSample" in ops) == (msda == "grid_sample")
    assert result.metadata["msda"] == msda
    assert check_onnx(model, result.path, batch_sizes=(2,)).ok


def test_fixed_batch_export_and_options_from_spec(tmp_path):
    options = ExportOptions.from_config({"input_height": 64, "input_width": 64, "batch_size": 2,
                                         "opset_version": 17})
    assert options.input_size == (64, 64) and not options.dynamic_batch and options.batch_size == 2
    assert ExportOptions.from_config({"batch_size": -1}).dynamic_batch
    model = TinyGrounding()
    result = export_onnx(model, tmp_path / "fixed.onnx", input_size=(64, 64), dynamic_batch=False, batch_size=2)
    inputs = ort_session(result.path).get_inputs()
    assert inputs[0].shape == [2, 3, 64, 64] and inputs[1].shape == [2, 32]
    report = check_onnx(model, result.path, batch_sizes=(1, 2))
    assert report.ok and {d.batch for d in report.diffs} == {2}      # fixed batch: checked at 2 only


def test_check_reports_a_model_that_changed_after_export(tmp_path):
    model = TinyGrounding()
    result = export_onnx(model, tmp_path / "tiny.onnx", input_size=(64, 64))
    perturb_(model.box, 0.5)
    report = check_onnx(model, result.path, batch_sizes=(1,))
    assert not report.ok and report.max_abs_diff > 1e-3
    assert "MISMATCH" in report.summary()


def test_report_allows_only_the_stated_share_of_moved_queries(tmp_path):
    """Rows moved by proposal near-ties are excluded from the comparison but counted."""
    from mask_grounding_dino.export import OnnxCheckReport, OutputDiff

    diffs = [OutputDiff(1, "pred_boxes", (1, 900, 4), max_abs_diff=0.4, nonfinite_match=True, same_query_diff=1e-6),
             OutputDiff(1, "no_targets", (1, 2), max_abs_diff=1e-6, nonfinite_match=True)]
    strict = OnnxCheckReport(tmp_path, atol=1e-3, diffs=diffs, moved_queries={1: (4, 900)})
    lenient = OnnxCheckReport(tmp_path, atol=1e-3, max_moved_queries=0.01, diffs=diffs,
                              moved_queries={1: (4, 900)})
    assert not strict.ok and lenient.ok
    assert "4 of 900 query rows differ" in lenient.summary()
    diffs[1].max_abs_diff = 0.1                      # a non-query output is never excused
    assert not lenient.ok


def test_tolerance_is_relative_for_large_values(tmp_path):
    """A trained model's mask logits reach ~500: 1e-3 absolute there is float32 rounding
    (relative 2e-6), while the same 1e-3 on a value of order 1 is a real difference."""
    from mask_grounding_dino.export.onnx_check import OnnxCheckReport, OutputDiff, _compare

    torch_masks = np.array([[-158.3, 486.8, 0.5]], dtype=np.float32)
    diff, agree, excess = _compare(torch_masks, torch_masks + np.float32([[1.1e-3, 0.0, 0.0]]), rtol=1e-4)
    assert agree and diff == pytest.approx(1.1e-3, rel=0.05) and excess < 1e-3     # 1.1e-3 - 1.6e-2 < 0
    small = np.array([[0.5, 2.0]], dtype=np.float32)
    _, _, small_excess = _compare(small, small + np.float32([[2e-3, 0.0]]), rtol=1e-4)
    assert small_excess > 1e-3                                                       # 2e-3 - 5e-5
    report = OnnxCheckReport(tmp_path, atol=1e-3, rtol=1e-4,
                             diffs=[OutputDiff(1, "pred_masks", (1, 3), diff, agree, excess=excess)])
    assert report.ok and "0.001 + 0.0001 x |value|" in report.summary()
    report.diffs.append(OutputDiff(1, "pred_logits", (1, 2), 2e-3, True, excess=small_excess))
    assert not report.ok


class Untraceable(TinyGrounding):
    def forward(self, *inputs):
        if torch.jit.is_tracing():
            raise RuntimeError("cannot trace this")
        return super().forward(*inputs)


def test_failed_export_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")
    with pytest.raises(RuntimeError, match="cannot trace"):
        export_onnx(Untraceable(), path, input_size=(64, 64))
    assert path.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(opset=11), "opset_version"),
    (dict(input_size=(16, 64)), "at least 32"),
    (dict(input_size=(64,)), "two integers"),
    (dict(msda="plugin"), "gather or grid_sample"),
    (dict(dynamic_batch=False, batch_size=0), "batch_size"),
])
def test_bad_requests_are_user_errors(tmp_path, kwargs, message):
    args = {"input_size": (64, 64), **kwargs}
    with pytest.raises(ExportError, match=message):
        export_onnx(TinyGrounding(), tmp_path / "x.onnx", **args)


def test_bad_spec_values_and_paths_are_user_errors(tmp_path):
    with pytest.raises(ExportError, match="input_channel"):
        ExportOptions.from_config({"input_channel": 1})
    with pytest.raises(ExportError, match="batch_size"):
        ExportOptions.from_config({"batch_size": 0})
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(TinyGrounding(), tmp_path, input_size=(64, 64))
    with pytest.raises(ExportError, match="does not exist"):
        check_onnx(TinyGrounding(), tmp_path / "missing.onnx")


class CeilDivisions(nn.Module):
    def forward(self, x):
        windows = -(-x.shape[1] // 7)                # ceil division on a traced size
        below = (x.shape[1] - 200) // 7              # negative // positive
        return torch.zeros(windows * 7) + x.sum(), torch.zeros(below + 50), x // 0.3, (x * 10).long() // -3


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_floor_division_is_exported_as_floor_not_truncation(tmp_path):
    """The TorchScript exporter writes torch's floor division as a truncating Div;
    export_onnx's correction must floor like PyTorch for negative operands too."""
    from mask_grounding_dino.export.symbolics import exporter_fixes

    x = torch.randn(2, 136)
    names = ["windows", "below", "float_div", "int_div"]
    with exporter_fixes(17):
        torch.onnx.export(CeilDivisions(), (x,), str(tmp_path / "div.onnx"), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=names, dynamic_axes={"x": {0: "b"}})
    got = ort_session(tmp_path / "div.onnx").run(None, {"x": x.numpy()})
    for name, ours, want in zip(names, got, CeilDivisions()(x)):
        assert ours.shape == tuple(want.shape), name
        np.testing.assert_allclose(ours, want.numpy(), rtol=0, atol=1e-5, err_msg=name)
    assert got[0].shape == (140,)                     # 20 windows, not 19


def test_example_inputs_follow_the_tao_contract():
    example = example_inputs(3, (32, 48), text_len=256)
    assert example.inputs.shape == (3, 3, 32, 48)
    assert example.input_ids.shape == example.position_ids.shape == (3, 256)
    assert example.text_token_mask.shape == (3, 256, 256) and example.text_token_mask.dtype == torch.bool
    assert example.attention_mask.dtype == torch.bool
    # Rows get different captions, so the batch is not one row repeated.
    assert not torch.equal(example.input_ids[0], example.input_ids[1])


# --- the real model ------------------------------------------------------------------

#: A BERT small enough to build in milliseconds; the tokenizer stays bert-base-uncased.
TINY_TEXT = dict(model_type="bert", vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=512)
SMALL = dict(backbone="swin_nano", hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=64,
             num_queries=20, text_encoder_type="bert-base-uncased", text_encoder_config=TINY_TEXT,
             has_mask=True, num_region_queries=8)


@pytest.fixture(scope="module")
def small_model():
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO

    torch.manual_seed(0)
    model = MaskGroundingDINO(**SMALL).eval()
    perturb_(model, 0.02)
    return model


@pytest.mark.slow
# Sizes that are not multiples of Swin's 7x7 windows: the window counts are ceil-divisions
# in the graph (see export/symbolics.py).
@pytest.mark.parametrize("input_size", [(64, 96), (96, 64)])
def test_small_model_exports_and_matches_onnxruntime(tmp_path, small_model, input_size, monkeypatch):
    # A tiny chunk budget makes the mask head split its queries into chunks, whose bounds must
    # not end up batch-dependent in the graph (traced at batch 2, checked at batch 1).
    monkeypatch.setattr(small_model.mask_head, "chunk_elements", 4096)
    result = export_onnx(small_model, tmp_path / "small.onnx", input_size=input_size, opset=17)
    assert small_model.mask_head.chunk_elements == 4096          # restored after the export
    h, w = input_size
    assert result.output_names == ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits")
    session = ort_session(result.path)
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)
    declared = {o.name: o.shape for o in session.get_outputs()}
    assert declared["pred_masks"] == [BATCH_AXIS, 20, 1, h // 4, w // 4]
    assert declared["union_mask_logits"] == [BATCH_AXIS, 2, h // 8, w // 8]
    report = check_onnx(small_model, result.path, batch_sizes=(1, 2))
    # 1e-3: float32 rounding through ~20 layers, observed ~1e-4 at most.
    assert report.ok, report.summary()
    assert report.max_abs_diff < 1e-3
