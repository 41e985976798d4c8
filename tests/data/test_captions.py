"""Captions: TAO's OD / VG rules, determinism, spans, expression cleaning, left/right swap."""

import random

import pytest

from mask_grounding_dino.data.captions import (build_eval_caption, build_expression_caption,
                                               build_grounding_caption, build_od_caption, clean_expression,
                                               remap_span, swap_left_right)
from mask_grounding_dino.text.spans import find_phrase, join_phrases

LABELS = {i: name for i, name in enumerate(
    ["person", "cat", "bobcat", "tv remote", "dog", "car", "bus", "cup", "fork", "kite"])}


def _check_spans(sample):
    for phrase, spans in zip(sample.phrases, sample.phrase_spans):
        assert [sample.caption[s:e] for s, e in spans] == [phrase]


def test_od_caption_has_positives_negatives_and_tao_format():
    sample = build_od_caption([1, 3, 1], LABELS, max_labels=5, rng=random.Random(0))
    assert len(sample.phrases) == 5 and len(set(sample.phrases)) == 5
    assert {"cat", "tv remote"} <= set(sample.phrases)
    assert sample.caption == " . ".join(sample.phrases) + " ."
    assert [sample.phrases[i] for i in sample.labels] == ["cat", "tv remote", "cat"]
    assert sample.class_ids == [1, 3, 1]
    _check_spans(sample)


def test_od_caption_respects_max_labels_but_keeps_every_positive():
    assert len(build_od_caption([0], LABELS, max_labels=3, rng=random.Random(1)).phrases) == 3
    assert len(build_od_caption([0], LABELS, max_labels=50, rng=random.Random(1)).phrases) == 10
    many = build_od_caption([0, 1, 2, 3, 4], LABELS, max_labels=2, rng=random.Random(1))
    assert sorted(many.phrases) == sorted(LABELS[i] for i in range(5))   # TAO keeps all positives
    empty = build_od_caption([], LABELS, max_labels=4, rng=random.Random(1))
    assert len(empty.phrases) == 4 and empty.labels == []


def test_od_caption_is_deterministic_given_the_generator_and_varies_otherwise():
    runs = [build_od_caption([2], LABELS, 6, random.Random(7)).caption for _ in range(3)]
    assert len(set(runs)) == 1
    varied = {build_od_caption([2], LABELS, 6, random.Random(seed)).caption for seed in range(20)}
    assert len(varied) > 10   # negatives and order change with the seed


def test_duplicate_class_names_share_one_phrase():
    sample = build_od_caption([0, 1], {0: "cat", 1: "cat", 2: "dog"}, 3, random.Random(0))
    assert sorted(sample.phrases) == ["cat", "dog"] and sample.labels[0] == sample.labels[1]


def test_eval_caption_lists_categories_in_id_order():
    sample = build_eval_caption({2: "c", 0: "a", 1: "b"}, [1, 2])
    assert sample.caption == "a . b . c ." and sample.labels == [1, 2] and sample.class_ids == [1, 2]
    _check_spans(sample)


def test_grounding_caption_uses_unique_shuffled_phrases():
    phrases = ["a man", "a horse", "a man"]
    sample = build_grounding_caption(phrases, random.Random(3))
    assert sorted(sample.phrases) == ["a horse", "a man"]
    assert [sample.phrases[i] for i in sample.labels] == phrases and sample.class_ids == [-1] * 3
    _check_spans(sample)


def test_expression_caption_whole_expression_is_class_zero():
    sample = build_expression_caption("  The red circle on the LEFT. ", ["The red circle on the LEFT."])
    assert sample.caption == "the red circle on the left ."
    assert sample.phrases == ["the red circle on the left"] and sample.labels == [0]
    empty = build_expression_caption("the green square", [])
    assert empty.labels == [] and empty.phrases == ["the green square"]


def test_expression_caption_uses_region_phrases_found_in_it():
    sample = build_expression_caption("The man riding a horse", ["man", "horse", "a unicorn"])
    # "a unicorn" is not in the expression: that region falls back to the whole expression.
    assert sample.phrases == ["the man riding a horse", "man", "horse"]
    assert sample.labels == [1, 2, 0]
    _check_spans(sample)
    only_parts = build_expression_caption("man with a hat", ["man", "hat"])
    assert only_parts.phrases == ["man", "hat"] and only_parts.labels == [0, 1]


def test_expression_caption_carries_tokens_positive_through_cleaning():
    text = "  Two   dogs near the car"
    spans = [[[text.index("dogs"), text.index("dogs") + 4]], [[text.index("car"), text.index("car") + 3]]]
    sample = build_expression_caption(text, [text, text], spans)
    assert [sample.caption[s:e] for s, e in sample.instance_spans[0]] == ["dogs"]
    assert [sample.caption[s:e] for s, e in sample.instance_spans[1]] == ["car"]


def test_clean_expression_map():
    text, remap = clean_expression("A  b?")
    assert text == "a b ."
    assert remap == [0, -1, -1, 2, -1, 3]


def test_swap_left_right_words_and_spans():
    text, remap = swap_left_right("Left cup, the rightmost plate; bright lefty")
    assert text == "Right cup, the leftmost plate; bright lefty"   # whole words only, case kept
    assert text[slice(*remap_span((0, 4), remap))] == "Right"
    start = "Left cup, the ".__len__()
    assert text[slice(*remap_span((start, start + 9), remap))] == "leftmost"
    end = len("Left cup, the rightmost plate")
    assert text[slice(*remap_span((end - 5, end), remap))] == "plate"


def test_caption_sample_flip_and_select():
    sample = build_expression_caption("the cup on the left", ["the cup on the left", "cup"])
    flipped = sample.swap_left_right()
    assert flipped.caption == "the cup on the right ." and flipped.phrases[0] == "the cup on the right"
    _check_spans(flipped)
    assert flipped.select([1]).labels == [1]
    assert build_od_caption([0], LABELS, 3, random.Random(0)).swap_left_right().caption  # no-op is fine


@pytest.mark.parametrize("caption,phrase,expected", [
    ("bobcat . cat .", "cat", (9, 12)),          # whole words: not inside "bobcat"
    ("Red Circle .", "red circle", (0, 10)),     # case-insensitive
    ("dog .", "cat", None),
])
def test_find_phrase(caption, phrase, expected):
    assert find_phrase(caption, phrase) == expected


def test_join_phrases_empty():
    assert join_phrases([]) == ("", [])
