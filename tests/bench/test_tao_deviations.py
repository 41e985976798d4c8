"""The two TAO rules that bench/tao_deviations.py measures do what they claim, on the tiny preset."""

from __future__ import annotations

import importlib.util
import pathlib

import torch

from mask_grounding_dino.model.presets import build_preset
from mask_grounding_dino.text import TextProcessor

_SPEC = importlib.util.spec_from_file_location(
    "tao_deviations", pathlib.Path(__file__).resolve().parents[2] / "bench" / "tao_deviations.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _run(model, tp, captions):
    torch.manual_seed(0)
    images = torch.randn(len(captions), 3, 96, 96)
    text = tp(captions)
    with torch.no_grad():
        return model(images, *text.as_tuple())


def test_tao_text_mask_only_matters_when_captions_differ():
    torch.manual_seed(0)
    model = build_preset("tiny").eval()
    tp = TextProcessor("bert-base-uncased", model.max_text_len)     # the tiny preset's tokenizer
    same = ["red circle . blue square ."] * 2
    mixed = ["red circle . blue square .", "a green triangle . red . blue square ."]
    ours_same, ours_mixed = _run(model, tp, same), _run(model, tp, mixed)
    with bench.tao_text_mask_rule():
        tao_same, tao_mixed = _run(model, tp, same), _run(model, tp, mixed)
    # Equal captions: every head of every image gets the same mask either way (exact).
    assert torch.equal(ours_same.pred_boxes, tao_same.pred_boxes)
    finite = torch.isfinite(ours_mixed.pred_logits)
    # Different captions: TAO hands some heads the other image's phrase mask -> other outputs.
    assert not torch.allclose(ours_mixed.pred_logits[finite], tao_mixed.pred_logits[finite])


def test_tao_eval_box_rule_changes_boxes_but_not_logits():
    torch.manual_seed(0)
    model = build_preset("tiny").eval()
    # The box heads start at zero (DINO's init), which leaves every layer's reference unchanged:
    # give them weights so the decoder really refines, as a trained model does.
    for param in model.bbox_embed.parameters():
        torch.nn.init.normal_(param, std=0.2)
    tp = TextProcessor("bert-base-uncased", model.max_text_len)
    ours = _run(model, tp, ["red circle ."])
    with bench.tao_eval_box_rule():
        tao = _run(model, tp, ["red circle ."])
    assert torch.equal(ours.pred_logits, tao.pred_logits)
    assert not torch.allclose(ours.pred_boxes, tao.pred_boxes)
