"""Mask branch: shapes, TAO's dynamic-conv layout, coordinate math, gradients, determinism."""

import pytest
import torch
import torch.nn.functional as F

from mask_grounding_dino.model.mask_head import (
    MaskHead, aligned_bilinear, grid_locations, memory_to_maps, reference_to_pixels, relative_coords)

C = 32  # small width: the math does not depend on it


def _maps(b=2, sizes=((9, 13), (5, 7), (3, 4)), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, C, h, w, generator=g) for h, w in sizes]


def _head(seed=0, **kw):
    torch.manual_seed(seed)
    return MaskHead(hidden_dim=C, **kw)


def test_tao_parameter_layout():
    head = MaskHead(hidden_dim=256)
    assert head.num_dynamic_params == 169            # (10*8 + 8*8 + 8*1) weights + (8+8+1) biases
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["controller.layers.2.weight"] == (169, 256)
    assert shapes["lay1.weight"] == (64, 256, 3, 3) and shapes["lay2.weight"] == (8, 64, 3, 3)
    assert {"lay3.weight", "lay4.weight", "jia_dcn.weight"} <= shapes.keys()
    assert not any("norm" in k for k in shapes)       # TAO's pixel decoder has no normalisation


def test_shapes_with_odd_sizes():
    head = _head()
    feats, fused = head.features(_maps())
    assert feats.shape == (2, 8, 9, 13) and fused.shape == (2, C, 9, 13)
    queries, ref = torch.randn(2, 5, C), torch.rand(2, 5, 2) * 70
    masks = head.predict(feats, queries, ref)
    assert masks.shape == (2, 5, 1, 18, 26)
    assert torch.isfinite(masks).all()


def test_grid_and_relative_coords_hand_case():
    # A 2x3 map at stride 8: cell centres x = 4, 12, 20 and y = 4, 12 (TAO: + stride // 2).
    loc = grid_locations(2, 3, 8)
    assert loc.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    rel = relative_coords(torch.tensor([[10.0, 6.0]]), 2, 3, 8)   # [1, 2, 6]
    assert rel.shape == (1, 2, 6)
    assert rel[0, :, 0].tolist() == [6.0, 2.0]        # (10 - 4, 6 - 4)
    assert rel[0, :, 5].tolist() == [-10.0, -6.0]     # (10 - 20, 6 - 12): pixels, not normalised


def test_memory_to_maps_inverts_flattening():
    maps = _maps()
    memory = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)   # the encoder's layout
    back = memory_to_maps(memory, [m.shape[-2:] for m in maps])
    assert all(torch.equal(a, b) for a, b in zip(back, maps))
    picked = memory_to_maps(memory, [m.shape[-2:] for m in maps], levels=[2, 0])   # the mask head's choice
    assert torch.equal(picked[0], maps[2]) and torch.equal(picked[1], maps[0])
    assert picked[0].untyped_storage().data_ptr() == memory.untyped_storage().data_ptr()   # a view, no copy


def test_reference_to_pixels_uses_unpadded_size():
    ref = torch.tensor([[[0.5, 0.25, 0.1, 0.1]]])
    sizes = torch.tensor([[40, 100]])                   # (h, w) before padding
    assert reference_to_pixels(ref, sizes).tolist() == [[[50.0, 10.0]]]


def test_aligned_bilinear_samples_at_shifted_centres():
    # Output pixel i samples the input at (i - 1) / 2 for factor 2, clamped at the border.
    x = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 3, 4)
    y = aligned_bilinear(x, 2)
    assert y.shape == (1, 1, 6, 8)
    assert torch.allclose(y[0, 0, 0], torch.tensor([0, 0, 0.5, 1, 1.5, 2, 2.5, 3.0]))
    assert torch.equal(aligned_bilinear(x, 1), x)


def _reference_dynamic_masks(head, feats, queries, ref):
    """TAO's formulation, written independently: per-instance inputs [rel_xy, feats] run
    through grouped 1x1 convolutions whose weights are cut from the controller output."""
    b, m, h, w = feats.shape
    q = queries.shape[1]
    params = head.controller(queries).reshape(b * q, -1)
    n = b * q
    sizes = [80, 64, 8, 8, 8, 1]
    w0, w1, w2, b0, b1, b2 = torch.split(params, sizes, dim=1)
    rel = torch.stack(torch.meshgrid(torch.arange(h) * 8 + 4.0, torch.arange(w) * 8 + 4.0, indexing="ij")[::-1])
    rel = ref.reshape(n, 2, 1, 1) - rel[None]                               # [n, 2, h, w]
    inp = torch.cat([rel, feats.repeat_interleave(q, dim=0)], dim=1).reshape(1, n * (m + 2), h, w)
    x = F.relu(F.conv2d(inp, w0.reshape(n * 8, m + 2, 1, 1), b0.reshape(-1), groups=n))
    x = F.relu(F.conv2d(x, w1.reshape(n * 8, 8, 1, 1), b1.reshape(-1), groups=n))
    x = F.conv2d(x, w2.reshape(n, 8, 1, 1), b2.reshape(-1), groups=n)
    return aligned_bilinear(x.reshape(n, 1, h, w), 2).reshape(b, q, 1, 2 * h, 2 * w)


@pytest.mark.parametrize("batch, sizes, extent", [(2, ((9, 13), (5, 7), (3, 4)), 70),
                                                   # a 800x1333 image's stride-8 map: up to ~1300 px
                                                   (1, ((100, 167), (50, 84), (25, 42)), 1333)])
def test_predict_matches_grouped_conv_formulation(batch, sizes, extent):
    head = _head()
    feats, _ = head.features(_maps(b=batch, sizes=sizes))
    queries, ref = torch.randn(batch, 5, C), torch.rand(batch, 5, 2) * extent
    with torch.no_grad():
        ours = head.predict(feats, queries, ref)
        theirs = _reference_dynamic_masks(head, feats, queries, ref)
    # Same math in float32 with a different summation order (ours adds w @ ref and -w @ cell where
    # the reference subtracts first): relative 1e-5 of the magnitude.
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_predict_pairs_equals_predict_rows_and_chunking_is_invisible():
    head = _head()
    feats, _ = head.features(_maps())
    queries, ref = torch.randn(2, 5, C), torch.rand(2, 5, 2) * 70
    with torch.no_grad():
        full = head.predict(feats, queries, ref)
        head.chunk_elements = 1                       # one query per chunk
        chunked = head.predict(feats, queries, ref)
        bi, qi = torch.tensor([0, 1, 1]), torch.tensor([4, 0, 3])
        pairs = head.predict_pairs(feats, queries[bi, qi], ref[bi, qi], bi)
    # Chunking only splits a batched matmul; pairs use the same kernels on a gathered batch.
    assert torch.allclose(chunked, full, atol=1e-6)
    assert torch.allclose(pairs, full[bi, qi, 0], atol=1e-6)


def test_relative_coordinates_move_the_mask():
    # Same query, reference point moved by one stride-8 cell: the mask logits at stride 8
    # shift by exactly one cell (the features are constant, so only the coordinates matter).
    head = _head()
    feats = torch.ones(1, 8, 6, 6)
    q = torch.randn(1, C)
    a = head.predict_pairs(feats, q, torch.tensor([[20.0, 20.0]]), torch.tensor([0]))
    b = head.predict_pairs(feats, q, torch.tensor([[28.0, 20.0]]), torch.tensor([0]))
    # Every stride-4 column of `a` appears two columns later in `b` (interior, away from borders).
    assert torch.allclose(a[0, :, 2:8], b[0, :, 4:10], atol=1e-5)


def test_gradients_reach_every_parameter():
    head = _head()
    feats, fused = head.features(_maps())
    bi = torch.tensor([0, 1, 1])
    masks = head.predict_pairs(feats, torch.randn(3, C), torch.rand(3, 2) * 70, bi)
    (masks.sigmoid().mean() + fused.mean()).backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_empty_pairs_and_determinism():
    head_a, head_b = _head(seed=3), _head(seed=3)
    feats_a, _ = head_a.features(_maps())
    feats_b, _ = head_b.features(_maps())
    assert torch.equal(feats_a, feats_b)
    queries, ref = torch.randn(1, 4, C), torch.rand(1, 4, 2) * 50
    assert torch.equal(head_a.predict(feats_a[:1], queries, ref), head_b.predict(feats_b[:1], queries, ref))
    empty = head_a.predict_pairs(feats_a, torch.zeros(0, C), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 18, 26)
    empty.sum().backward()   # an image batch with no matches must not break the backward pass


@pytest.mark.parametrize("hidden", [64, 256])
def test_from_config(hidden):
    cfg = type("Model", (), {"hidden_dim": hidden})()
    head = MaskHead.from_config(cfg)
    assert head.controller.layers[0].in_features == hidden and head.lay1.out_channels == hidden // 4


class _Exportable(torch.nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, s8, s16, s32, queries, ref):
        feats, fused = self.head.features([s8, s16, s32])
        return self.head.predict(feats, queries, ref), fused


def test_onnx_export_with_dynamic_shapes_matches_pytorch():
    import io
    import warnings
    ort = pytest.importorskip("onnxruntime")
    # One query chunk: for export the chunk loop must not be unrolled (set a large budget).
    head = _head(chunk_elements=1 << 30).eval()
    names = ["s8", "s16", "s32", "queries", "ref"]
    axes = {"s8": {0: "b", 2: "h8", 3: "w8"}, "s16": {0: "b", 2: "h16", 3: "w16"},
            "s32": {0: "b", 2: "h32", 3: "w32"}, "queries": {0: "b", 1: "q"}, "ref": {0: "b", 1: "q"}}
    args = (*_maps(), torch.randn(2, 5, C), torch.rand(2, 5, 2) * 70)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Exportable(head), args, buf, dynamo=False, opset_version=17, input_names=names,
                          output_names=["pred_masks", "fused"], dynamic_axes=axes)
    session = ort.InferenceSession(buf.getvalue())
    args = (*_maps(b=1, sizes=((8, 10), (4, 5), (2, 3)), seed=4), torch.randn(1, 7, C), torch.rand(1, 7, 2) * 60)
    got = session.run(None, dict(zip(names, [a.numpy() for a in args])))
    with torch.no_grad():
        want = _Exportable(head)(*args)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        assert abs(g - w.numpy()).max() < 1e-4   # float32 kernels of two runtimes
