"""The text side: resolving and building the BERT-family encoder offline, the phrase mask."""

from __future__ import annotations

import logging

import pytest
import torch

from mask_grounding_dino.errors import UserError
from mask_grounding_dino.model import text_encoder as te
from mask_grounding_dino.model.presets import TINY_TEXT_CONFIG


def test_minilm_loads_its_pretrained_weights():
    from transformers import AutoModel
    from mask_grounding_dino.text.tokenizer import bundled_minilm_path

    model = te.build_text_encoder("minilm")
    reference = AutoModel.from_pretrained(bundled_minilm_path())
    assert model.config.hidden_size == 384
    name = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[name], reference.state_dict()[name])
    assert not any(p.requires_grad for p in model.pooler.parameters())   # unused, frozen


def test_bert_base_offline_builds_random_weights_with_one_notice(caplog, monkeypatch):
    monkeypatch.setattr(te, "_NOTICES", set())
    with caplog.at_level(logging.WARNING, logger=te.__name__):
        model = te.build_text_encoder("bert-base-uncased")
        te.build_text_encoder("bert-base-uncased")
    notices = [r for r in caplog.records if "not available offline" in r.getMessage()]
    assert len(notices) == 1
    cfg = model.config   # BertConfig() defaults are bert-base-uncased
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.vocab_size) == (768, 12, 12, 30522)


def test_architecture_only_needs_no_lookup_and_no_notice(caplog, monkeypatch):
    monkeypatch.setattr(te, "_NOTICES", set())
    with caplog.at_level(logging.WARNING, logger=te.__name__):
        model = te.build_text_encoder("bert-base-uncased", load_weights=False)
    assert model.config.hidden_size == 768 and not caplog.records


def test_saved_config_rebuilds_the_same_architecture():
    model = te.build_text_encoder("bert-base-uncased", config=TINY_TEXT_CONFIG)
    again = te.build_text_encoder("ignored", config=te.text_config_dict(model))
    assert again.config.hidden_size == 32 and again.config.num_hidden_layers == 1
    assert model.state_dict().keys() == again.state_dict().keys()


def test_unknown_hub_id_offline_is_a_user_error():
    with pytest.raises(UserError, match="text_encoder_type 'someone/no-such-model'.*Offline"):
        te.build_text_encoder("someone/no-such-model")


def test_missing_local_folder_is_a_user_error():
    with pytest.raises(UserError, match="does not exist"):
        te.build_text_encoder("./no/such/folder")


def test_tokens_attend_only_within_their_phrase(gd):
    """Changing a word of one phrase leaves the features of every other phrase unchanged."""
    torch.manual_seed(0)
    model = te.build_text_encoder("bert-base-uncased", config=TINY_TEXT_CONFIG).eval()
    a = gd.text_inputs(["red circle . blue square ."])
    b = gd.text_inputs(["red circle . green square ."])
    assert a.input_ids.shape == b.input_ids.shape
    with torch.no_grad():
        fa = te.run_text_encoder(model, a.input_ids, a.text_token_mask, a.position_ids, a.token_type_ids)
        fb = te.run_text_encoder(model, b.input_ids, b.text_token_mask, b.position_ids, b.token_type_ids)
    changed = (fa - fb).abs().amax(-1)[0] > 1e-6
    # [CLS] red circle . | blue/green square . | [SEP]: only the second phrase (positions 4-6) moves.
    assert changed.tolist() == [False, False, False, False, True, True, True, False]


def test_text_features_are_truncated_to_max_text_len(gd):
    model = gd.tiny_model(max_text_len=6).eval()
    ti = gd.text_inputs(["red circle . blue square ."])
    feats = model.encode_text(*ti.as_tuple())
    assert feats.encoded.shape[:2] == (1, 6) and feats.self_attention_masks.shape == (1, 6, 6)
