"""ReLA region head: shapes, TAO semantics (masked attention, text residual), gradients, export."""

import io
import types
import warnings

import pytest
import torch

from mask_grounding_dino.model.rela import RegionHead, region_attention_mask

C, HEADS, QR = 32, 4, 6
SIZES = ((3, 4), (5, 7), (9, 13))   # strides 32, 16, 8 of a 72x104 input: odd sizes on purpose


def _head(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(hidden_dim=C, num_region_queries=QR, num_layers=3, nheads=HEADS, dim_feedforward=64)
    args.update(kw)
    return RegionHead(**args)


def _inputs(b=2, sizes=SIZES, length=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    maps = [torch.randn(b, C, h, w, generator=g) for h, w in sizes]
    pos = [torch.randn(b, C, h, w, generator=g) for h, w in sizes]
    fused = torch.randn(b, C, *sizes[2], generator=g)
    text = torch.randn(b, length, C, generator=g)
    return maps, pos, fused, text, torch.ones(b, length, dtype=torch.bool)


def test_output_shapes():
    out = _head()(*_inputs())
    assert out.no_targets.shape == (2, 2)
    assert out.union_mask_logits.shape == (2, 2, 9, 13)
    assert out.minimap.shape == (2, QR, 2)
    assert all(torch.isfinite(t).all() for t in (out.no_targets, out.union_mask_logits, out.minimap))


def test_tao_parameter_names():
    names = set(_head().state_dict())
    expected = {"RIA_layers.0.multihead_attn.in_proj_weight", "RLA_vision.2.self_attn.out_proj.weight",
                "transformer_ffn_layers.1.linear1.weight", "RLA_lang_att.multihead_attn.in_proj_weight",
                "lang_weight", "decoder_norm.weight", "query_feat.weight", "query_embed.weight",
                "level_embed.weight", "mask_embed.layers.2.weight", "minimap_embed.weight",
                "nt_embed.layers.1.weight"}
    assert expected <= names
    assert _head().lang_weight.item() == 0.0


def test_attention_mask_blocks_below_half_and_releases_empty_rows():
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :2, :2] = 5.0           # query 0 sees the top-left quarter only
    # query 1 predicts nothing anywhere: its row would be fully blocked -> released.
    mask = region_attention_mask(logits, (4, 4), nheads=3)
    assert mask.shape == (3, 2, 16) and mask.dtype == torch.bool
    expected_q0 = torch.ones(4, 4, dtype=torch.bool)
    expected_q0[:2, :2] = False
    assert torch.equal(mask[0, 0], expected_q0.flatten())
    assert not mask[:, 1].any()
    assert torch.equal(mask[0], mask[2])  # the same mask for every head
    assert not mask.requires_grad


def test_text_enters_through_the_gated_residual():
    head = _head().eval()
    maps, pos, fused, text, tmask = _inputs()
    base = head(maps, pos, fused, text, tmask)
    other = head(maps, pos, fused, torch.randn_like(text), tmask)
    assert not torch.allclose(base.no_targets, other.no_targets)   # the prompt matters
    with torch.no_grad():
        head.lang_weight.fill_(-40.0)      # sigmoid(-40) ~ 4e-18: the text gate closed
    closed_a = head(maps, pos, fused, text, tmask)
    closed_b = head(maps, pos, fused, torch.randn_like(text), tmask)
    assert torch.allclose(closed_a.union_mask_logits, closed_b.union_mask_logits, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_text_padding(masked):
    head = _head(mask_text_padding=masked).eval()
    maps, pos, fused, text, tmask = _inputs()
    tmask[:, 3:] = False                   # the last two tokens are padding
    noisy = text.clone()
    noisy[:, 3:] = torch.randn(2, 2, C) * 5
    a = head(maps, pos, fused, text, tmask).no_targets
    b = head(maps, pos, fused, noisy, tmask).no_targets
    # TAO passes no text padding mask, so padding leaks in; with the mask it cannot.
    assert torch.allclose(a, b, atol=1e-6) == masked


def test_gradients_reach_every_parameter():
    head = _head()
    out = head(*_inputs())
    (out.no_targets.sum() + out.union_mask_logits.mean() + out.minimap.mean()).backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_deterministic_and_batch_independent():
    a, b = _head(seed=5).eval(), _head(seed=5).eval()
    inputs = _inputs()
    out_a, out_b = a(*inputs), b(*inputs)
    assert torch.equal(out_a.union_mask_logits, out_b.union_mask_logits)
    single = a(*[x[:1] if torch.is_tensor(x) else [m[:1] for m in x] for x in inputs])
    # batch of 2 vs batch of 1: the same numbers up to float reordering
    assert torch.allclose(single.no_targets, out_a.no_targets[:1], atol=1e-5)


def test_pre_norm_and_from_config():
    cfg = types.SimpleNamespace(hidden_dim=C, num_region_queries=4, dec_layers=2, nheads=HEADS,
                                dim_feedforward=48, pre_norm=True)
    head = RegionHead.from_config(cfg)
    assert head.num_layers == 2 and head.query_feat.num_embeddings == 4
    assert head.RIA_layers[0].pre_norm
    out = head(*_inputs())
    assert out.minimap.shape == (2, 4, 2)


class _Exportable(torch.nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, m0, m1, m2, p0, p1, p2, fused, text):
        out = self.head([m0, m1, m2], [p0, p1, p2], fused, text)
        return out.no_targets, out.union_mask_logits, out.minimap


def test_onnx_export_with_dynamic_shapes_matches_pytorch():
    ort = pytest.importorskip("onnxruntime")
    head = _head().eval()
    maps, pos, fused, text, _ = _inputs()
    names = ["m0", "m1", "m2", "p0", "p1", "p2", "fused", "text"]
    axes = {f"{k}{i}": {0: "b", 2: f"h{i}", 3: f"w{i}"} for k in "mp" for i in range(3)}
    # The text length stays fixed, as in TAO's graph (captions padded to max_text_len).
    axes.update(fused={0: "b", 2: "h2", 3: "w2"}, text={0: "b"})
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Exportable(head), (*maps, *pos, fused, text), buf, dynamo=False, opset_version=17,
                          input_names=names, output_names=["no_targets", "union", "minimap"], dynamic_axes=axes)
    session = ort.InferenceSession(buf.getvalue())
    # Other batch size and image size than at export: no image shape was baked in.
    maps, pos, fused, text, _ = _inputs(b=1, sizes=((2, 3), (4, 5), (7, 9)), seed=7)
    feed = dict(zip(names, [t.numpy() for t in (*maps, *pos, fused, text)]))
    got = session.run(None, feed)
    with torch.no_grad():
        want = _Exportable(head)(*maps, *pos, fused, text)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        assert abs(g - w.numpy()).max() < 1e-4   # float32 kernels of two runtimes
