"""ONNX Runtime runs the export behind the PyTorch pre/post-processing and gives PyTorch's results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mask_grounding_dino.deploy import Detector, ImagePreprocessor, OnnxBackend, Thresholds, TorchBackend
from mask_grounding_dino.deploy.onnx_runner import INPUT_NAMES

#: onnxruntime vs PyTorch (fp32, same inputs): the export check measures ~2e-5 on this model;
#: 1e-3 on raw outputs (logits pass ~20 float32 layers) and 1e-4 on scores after the sigmoid
#: leave a 50x margin over that without hiding a real mismatch (a wrong op gives > 1e-1).
ATOL_RAW, ATOL_SCORE = 1e-3, 1e-4


@pytest.fixture(scope="module")
def backends(tiny_model, onnx_file):
    # Text padded to 256 as in the graph: the region head attends to padded tokens (TAO's design),
    # so no_targets / union_mask_logits depend on the padding length (~3e-3 here otherwise).
    return TorchBackend(tiny_model, device="cpu", text_pad_to=256), OnnxBackend(onnx_file)


@pytest.fixture(scope="module")
def batch(backends, rgb_images):
    # The ONNX graph is fixed at 96 x 96: resize exactly to it, no padding (as TAO Deploy).
    size = backends[1].fixed_input_size
    return ImagePreprocessor(input_size=size, size_divisibility=1)(rgb_images)


def test_reads_the_graph_interface(backends):
    onnx = backends[1]
    assert onnx.fixed_input_size == (96, 96) and onnx.fixed_batch is None
    assert onnx.text_len == 256 and onnx.text_processor.max_text_len == 256
    assert onnx.output_names == ["pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"]


def test_raw_outputs_match_pytorch(backends, batch):
    torch_backend, onnx = backends
    assert batch.pixel_mask is None and tuple(batch.images.shape) == (2, 3, 96, 96)
    captions = ["red block . blue block .", "a red block on the left ."]
    ours = torch_backend.run(torch_backend.encode_image(batch.images, None), captions)
    theirs = onnx.run(onnx.encode_image(batch.images, None), captions)
    for name in ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.shape == b.shape, name
        finite = torch.isfinite(a)
        assert torch.equal(finite, torch.isfinite(b)), name                  # -inf at padded tokens in both
        assert (a[finite] - b[finite]).abs().max() <= ATOL_RAW, name


def _assert_same_detections(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert len(a) == len(b) and a.image_size == b.image_size
        # Compare as sets keyed by (label, rounded box): near-equal scores may swap order.
        order_a = sorted(range(len(a)), key=lambda i: (int(a.labels[i]), *a.boxes[i].tolist()))
        order_b = sorted(range(len(b)), key=lambda i: (int(b.labels[i]), *b.boxes[i].tolist()))
        assert a.labels[order_a].tolist() == b.labels[order_b].tolist()
        assert [a.phrases[i] for i in order_a] == [b.phrases[i] for i in order_b]
        assert torch.allclose(a.boxes[order_a], b.boxes[order_b], atol=1e-2)  # pixels
        assert torch.allclose(a.scores[order_a], b.scores[order_b], atol=ATOL_SCORE)
        # Masks: bilinear upsampling of logits that differ by ~1e-5 flips at most a pixel or two.
        agree = (a.masks[order_a] == b.masks[order_b]).float().mean()
        assert agree >= 0.999


def test_od_and_vg_detections_equal_pytorch(backends, batch):
    torch_backend, onnx = backends
    thresholds = Thresholds(conf_threshold=0.3, num_select=50)
    ours, theirs = Detector(torch_backend, thresholds), Detector(onnx, thresholds)
    od_a = ours.detect_classes(batch, ["red block", "blue block", "background"])
    od_b = theirs.detect_classes(batch, ["red block", "blue block", "background"])
    assert sum(len(d) for d in od_a) > 0                                    # something to compare
    _assert_same_detections(od_a, od_b)
    captions = ["the red block .", "a blue block below the red one ."]
    _assert_same_detections(ours.detect_expressions(batch, captions), theirs.detect_expressions(batch, captions))


def test_rejects_inputs_the_graph_cannot_take(backends, batch):
    onnx = backends[1]
    with pytest.raises(ValueError, match="no padding mask"):
        onnx.encode_image(batch.images, torch.ones(2, 96, 96, dtype=torch.bool))
    with pytest.raises(ValueError, match="takes 96x96 images, got 64x96"):
        onnx.encode_image(batch.images[..., :64, :], None)


def test_fixed_batch_graph_runs_in_slices(backends, batch, monkeypatch):
    """A graph exported with a fixed batch of 1 gets a batch of 2 in two runs (same results)."""
    onnx = backends[1]
    captions = ["red block ."]
    whole = onnx.run(onnx.encode_image(batch.images, None), captions)
    calls = []
    run = onnx.session.run

    def counting_run(names, feed):
        calls.append(len(feed["inputs"]))
        return run(names, feed)

    monkeypatch.setattr(onnx, "fixed_batch", 1)
    monkeypatch.setattr(onnx.session, "run", counting_run, raising=False)
    sliced = onnx.run(onnx.encode_image(batch.images, None), captions)
    assert calls == [1, 1]
    np.testing.assert_allclose(whole.pred_logits.numpy(), sliced.pred_logits.numpy(), atol=1e-5)


def test_dynamic_text_graph_runs_captions_at_their_own_length(tiny_model, tmp_path, batch):
    """``dynamic_text`` (the CPU INT8 graph's form): the text inputs have a symbolic length, the runner
    pads captions to the longest as PyTorch does, and every output equals PyTorch's at that padding,
    for two different lengths from one graph."""
    import onnxruntime as ort

    from mask_grounding_dino.export import export_onnx
    from mask_grounding_dino.export.io_names import TRACE_TEXT_LEN

    path = tmp_path / "dynamic_text.onnx"
    export_onnx(tiny_model, path, input_size=(96, 96), dynamic_text=True)
    inputs = {i.name: i.shape for i in ort.InferenceSession(str(path)).get_inputs()}
    assert inputs["input_ids"] == ["batch_size", "text_len"]
    assert inputs["text_token_mask"] == ["batch_size", "text_len", "text_len"]
    torch_backend, onnx = TorchBackend(tiny_model, device="cpu"), OnnxBackend(path)
    assert onnx.pad_to is None and onnx.text_len == 256                       # max_text_len from the metadata
    for captions in (["red block ."], ["red block . blue block . a green one on the left . background ."]):
        fed = onnx.text_processor(captions).input_ids.shape[1]
        assert fed != TRACE_TEXT_LEN and fed < 256
        ours = torch_backend.run(torch_backend.encode_image(batch.images, None), captions)
        theirs = onnx.run(onnx.encode_image(batch.images, None), captions)
        assert theirs.text_mask.shape[1] == fed
        for name in ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"):
            a, b = getattr(ours, name), getattr(theirs, name)
            assert a.shape == b.shape, name
            finite = torch.isfinite(a)
            assert torch.equal(finite, torch.isfinite(b)), name
            assert (a[finite] - b[finite]).abs().max() <= ATOL_RAW, name


def test_text_side_is_cut_off_and_cached_with_the_same_outputs(tiny_model, onnx_file, batch, monkeypatch):
    """The runner splits the graph (text side | rest): the same outputs as the whole graph, and a prompt
    seen before does not run the text side again."""
    whole, split = OnnxBackend(onnx_file, text_cache_size=0), OnnxBackend(onnx_file)
    assert whole._split is None and split._split is not None
    text_session, _, boundary = split._split
    assert any(name not in INPUT_NAMES for name in boundary)        # computed text features cross
    calls = []
    original = text_session.run
    monkeypatch.setattr(text_session, "run", lambda *a, **k: calls.append(1) or original(*a, **k), raising=False)
    captions = ["red block . blue block ."]
    for _ in range(2):
        a = whole.run(whole.encode_image(batch.images, None), captions)
        b = split.run(split.encode_image(batch.images, None), captions)
        for name in ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"):
            x, y = getattr(a, name), getattr(b, name)
            finite = torch.isfinite(x)
            assert torch.equal(finite, torch.isfinite(y)), name
            assert (x[finite] - y[finite]).abs().max() <= ATOL_RAW, name
    assert len(calls) == 1                                             # the second call used the cache
    split.run(split.encode_image(batch.images, None), ["another prompt ."])
    assert len(calls) == 2


def test_a_split_graph_builds_the_whole_graph_only_when_a_call_needs_it(onnx_file, batch, monkeypatch):
    """Loading reads inputs, outputs and metadata from the file and builds the two halves only (a
    third copy of the weights for the whole graph would sit unused); a fixed-batch graph given a
    larger batch, which the halves do not take, builds it then."""
    backend = OnnxBackend(onnx_file)
    assert backend._split is not None and backend._session is None
    assert backend.output_names[:2] == ["pred_logits", "pred_boxes"] and "onnxruntime" in backend.describe()
    backend.run(backend.encode_image(batch.images, None), ["red block ."])
    assert backend._session is None
    monkeypatch.setattr(backend, "fixed_batch", 1)               # two images, a batch-1 graph: sliced runs
    sliced = backend.run(backend.encode_image(batch.images, None), ["red block ."])
    assert backend._session is not None and sliced.pred_logits.shape[0] == len(batch.images)


def test_thread_count_applies_to_every_session_built(onnx_file):
    backend = OnnxBackend(onnx_file)
    backend.session                                          # noqa: B018 - build the whole graph's session too
    backend.set_intra_op_threads(1)
    text, image, _ = backend._split
    for session in (text, image, backend.session):
        assert session.get_session_options().intra_op_num_threads == 1


def test_a_file_that_is_not_onnx_is_one_clear_error(tmp_path):
    from mask_grounding_dino.errors import CheckpointError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="is not a loadable ONNX model"):
        OnnxBackend(str(bad))
