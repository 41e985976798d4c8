import torch

from mask_grounding_dino.model.text_cache import PhraseFeatureCache, phrase_segments
from mask_grounding_dino.model.text_encoder import build_text_encoder, run_text_encoder
from mask_grounding_dino.text import TextProcessor


def _encoder():
    enc = build_text_encoder("minilm")
    enc.requires_grad_(False)
    return enc.eval()


def test_cached_features_equal_the_encoder_on_whole_captions():
    enc, tp = _encoder(), TextProcessor("minilm", 256)
    cache = PhraseFeatureCache()
    captions = ["red circle . blue square .", "blue square . red circle . green triangle .", "a cat ."]
    for _ in range(2):  # second round: all phrases come from the cache
        text = tp(captions)
        expected = run_text_encoder(enc, text.input_ids, text.text_token_mask, text.position_ids,
                                    text.token_type_ids)
        got = cache.encode(enc, text.input_ids, text.text_token_mask, text.position_ids, text.token_type_ids)
        valid = text.attention_mask
        # float32 matmuls over different sequence lengths round differently (~1e-6 relative)
        torch.testing.assert_close(got[valid], expected[valid], rtol=1e-4, atol=1e-5)
    assert cache.hits > 0 and len(cache) >= 5


def test_segments_start_at_position_zero():
    tp = TextProcessor("minilm", 256)
    text = tp(["red circle . blue square ."])
    assert phrase_segments(text.position_ids)[0] == [(0, 1), (1, 4), (4, 7), (7, 8)]


def test_falls_back_when_the_mask_is_not_phrase_blocks():
    enc, tp = _encoder(), TextProcessor("minilm", 256)
    text = tp(["red circle . blue square ."])
    full = torch.ones_like(text.text_token_mask)          # plain full attention: not cacheable
    cache = PhraseFeatureCache()
    got = cache.encode(enc, text.input_ids, full, text.position_ids, text.token_type_ids)
    expected = run_text_encoder(enc, text.input_ids, full, text.position_ids, text.token_type_ids)
    assert torch.equal(got, expected) and len(cache) == 0


def test_only_usable_for_a_frozen_encoder_in_eval_mode():
    enc = _encoder()
    assert PhraseFeatureCache.usable(enc)
    assert not PhraseFeatureCache.usable(enc.train())
    enc.eval().encoder.layer[0].attention.self.query.weight.requires_grad_(True)
    assert not PhraseFeatureCache.usable(enc)


def test_model_uses_the_cache_when_enabled(gd):
    model = gd.tiny_model()
    model.bert.requires_grad_(False)
    model.eval()
    x, mask = gd.images(2, 64, 96)
    text = gd.text_inputs(["red circle . blue square .", "blue square ."])
    plain = model(x, *text.as_tuple(), pixel_mask=mask)
    model.enable_text_cache()
    cached = model(x, *text.as_tuple(), pixel_mask=mask)
    assert model.text_cache.misses > 0
    finite = plain.pred_logits.isfinite()
    torch.testing.assert_close(cached.pred_logits[finite], plain.pred_logits[finite], rtol=1e-4, atol=1e-4)
