"""Positive token maps on hand-made captions: multi-token names, repeats, spans, truncation."""

import random

import pytest
import torch

from mask_grounding_dino.data.captions import CaptionSample, build_expression_caption, build_od_caption
from mask_grounding_dino.data.positive_map import build_token_maps, normalise_rows
from mask_grounding_dino.text.spans import join_phrases, locate_phrases, spans_to_token_map
from mask_grounding_dino.text import TextProcessor


@pytest.fixture(scope="module")
def tp():
    return TextProcessor("bert-base-uncased", max_text_len=32)


def _tokens(tp, caption):
    return tp.tokenizer.convert_ids_to_tokens(tp.tokenizer(caption)["input_ids"])


def _on(row):
    return torch.nonzero(row).flatten().tolist()


def test_multi_token_names_and_word_pieces(tp):
    caption, spans = join_phrases(["tv remote", "giraffe", "cat"])
    sample = CaptionSample(caption, ["tv remote", "giraffe", "cat"], [0, 1, 2, 0], spans)
    maps = build_token_maps(sample, tp.offsets(caption), 32)
    tokens = _tokens(tp, caption)
    assert [tokens[j] for j in _on(maps.positive_map[0])] == ["tv", "remote"]
    assert [tokens[j] for j in _on(maps.positive_map[1])] == ["gi", "##raf", "##fe"]
    assert [tokens[j] for j in _on(maps.positive_map[2])] == ["cat"]
    # Rows are normalised: equal weights summing to 1.
    assert torch.allclose(maps.positive_map[1][_on(maps.positive_map[1])], torch.full((3,), 1 / 3))
    assert torch.allclose(maps.positive_map.sum(1), torch.ones(4))
    assert torch.equal(maps.positive_map[3], maps.positive_map[0])   # same phrase, same row
    assert maps.phrase_map.shape == (3, 32) and maps.dropped == []


def test_repeated_phrase_is_located_in_order(tp):
    caption = "a dog . a cat . a dog on a mat ."
    spans = locate_phrases(caption, ["a dog", "a cat", "a dog"])
    assert spans == [[(0, 5)], [(8, 13)], [(16, 21)]]
    assert locate_phrases("bobcat . cat .", ["cat"]) == [[(9, 12)]]     # whole words only
    assert locate_phrases("dog .", ["cat"]) == [[]]
    # Without recorded spans the builder locates phrases itself.
    sample = CaptionSample(caption, ["a dog", "a cat"], [0, 1], phrase_spans=[])
    maps = build_token_maps(sample, tp.offsets(caption), 32)
    tokens = _tokens(tp, caption)
    assert [tokens[j] for j in _on(maps.positive_map[1])] == ["a", "cat"]


def test_tokens_positive_spans_override_the_phrase(tp):
    sample = build_expression_caption("the man riding a horse", ["the man riding a horse"],
                                      [[[4, 7], [17, 22]]])
    maps = build_token_maps(sample, tp.offsets(sample.caption), 32)
    tokens = _tokens(tp, sample.caption)
    assert [tokens[j] for j in _on(maps.positive_map[0])] == ["man", "horse"]
    assert torch.allclose(maps.positive_map[0].sum(), torch.tensor(1.0))
    assert len(_on(maps.phrase_map[0])) == 5     # the phrase itself covers every word


def test_truncated_phrases_get_zero_rows_not_errors():
    tp = TextProcessor("bert-base-uncased", max_text_len=8)
    labels = {i: f"name{i}" for i in range(10)}
    sample = build_od_caption(list(range(10)), labels, 10, random.Random(0))
    maps = build_token_maps(sample, tp.offsets(sample.caption), 8)
    assert maps.positive_map.shape == (10, 8)
    rows = maps.positive_map.sum(1)
    # Only the first phrases fit in 8 tokens ([CLS] ... [SEP]); the rest are all-zero rows.
    assert (rows == 0).sum() >= 5 and torch.allclose(rows[rows > 0], torch.ones(int((rows > 0).sum())))
    assert len(maps.dropped) >= 5
    assert not maps.positive_map[:, 0].any() and not maps.positive_map[:, 7].any()  # [CLS] / [SEP]


def test_span_table_helpers():
    table = spans_to_token_map([[(0, 3)], [(4, 9), (0, 1)], []], [(0, 0), (0, 3), (4, 9), (0, 0)], 6)
    assert table.tolist()[0][:4] == [0, 1, 0, 0] and table.tolist()[1][:4] == [0, 1, 1, 0]
    assert not table[2].any() and table.shape == (3, 6)
    norm = normalise_rows(table)
    assert norm[1, 1] == pytest.approx(0.5) and not norm[2].any()
