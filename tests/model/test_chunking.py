"""Long prompts: chunk planning (LVIS size), merging, and the chunked detection path with a fake model."""

import random

import pytest
import torch

from mask_grounding_dino.errors import UserError
from mask_grounding_dino.model.chunking import (
    PromptChunk, build_chunks, detect_chunked, merge_chunk_detections, phrase_token_counts, plan_chunks)
from mask_grounding_dino.model.outputs import GroundingOutputs
from mask_grounding_dino.text.spans import join_phrases
from mask_grounding_dino.model.postprocess import PostProcessor, PromptLayout
from mask_grounding_dino.model.results import Detections
from mask_grounding_dino.text import TextProcessor

MAX_LEN = 256


@pytest.fixture(scope="module")
def tp():
    return TextProcessor("minilm", max_text_len=MAX_LEN)


@pytest.fixture(scope="module")
def lvis_like(tp):
    """1,203 class names shaped like LVIS's: 1-3 real words, some rare words split into
    word pieces, a few long names; deterministic."""
    rng = random.Random(1203)
    vocab = [w for w in tp.tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) >= 3]
    vocab.sort()
    names = set()
    while len(names) < 1203:
        words = [rng.choice(vocab) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        if rng.random() < 0.2:                      # a compound like "sunhatbox": several word pieces
            words[0] = words[0] + rng.choice(vocab)
        if rng.random() < 0.01:
            words = [rng.choice(vocab) for _ in range(12)]
        names.add(" ".join(words))
    return sorted(names)


def caption_tokens(tp, phrases):
    return tp.num_tokens(join_phrases(phrases)[0])


def test_short_prompt_is_one_chunk(tp):
    assert plan_chunks(["cat", "dog", "traffic light"], tp) == [[0, 1, 2]]


def test_lvis_size_prompt_plans_into_full_chunks_that_fit(tp, lvis_like):
    chunks = plan_chunks(lvis_like, tp)
    # A partition of all phrases, in order.
    assert [i for c in chunks for i in c] == list(range(1203))
    lengths = [caption_tokens(tp, [lvis_like[i] for i in c]) for c in chunks]
    assert max(lengths) <= MAX_LEN
    # Greedy and maximal: no chunk could also take the next chunk's first phrase. With the
    # order fixed this is the fewest chunks possible.
    for this, nxt in zip(chunks, chunks[1:]):
        assert caption_tokens(tp, [lvis_like[i] for i in this + nxt[:1]]) > MAX_LEN
    total = sum(n + 1 for n in phrase_token_counts(lvis_like, tp))
    assert len(chunks) <= total // (MAX_LEN - 2) + 2


def test_chunks_never_split_a_phrase(tp, lvis_like):
    counts = phrase_token_counts(lvis_like, tp)
    for chunk in build_chunks(lvis_like, tp)[:4]:
        # Every phrase's row in its chunk's map covers all of its tokens: nothing truncated or cut.
        assert chunk.layout.phrase_map.sum(-1).tolist() == [counts[i] for i in chunk.indices]
        assert chunk.layout.phrases == [lvis_like[i] for i in chunk.indices]


def test_max_phrases_per_chunk(tp, lvis_like):
    chunks = plan_chunks(lvis_like[:200], tp, max_phrases=30)
    assert all(len(c) <= 30 for c in chunks) and [i for c in chunks for i in c] == list(range(200))


class _CountsMore:
    """A tokenizer front whose captions come out longer than the sum of their phrases
    (one extra token per 4 phrases), as a tokenizer merging across " . " might."""

    def __init__(self, tp):
        self.tokenizer, self.max_text_len = tp.tokenizer, 64
        self._tp = tp

    def num_tokens(self, caption):
        return self._tp.num_tokens(caption) + caption.count(" . ") // 4


def test_plans_are_verified_by_tokenising_each_caption(tp, lvis_like):
    odd = _CountsMore(tp)
    chunks = plan_chunks(lvis_like[:300], odd)
    assert [i for c in chunks for i in c] == list(range(300))
    assert max(odd.num_tokens(join_phrases([lvis_like[i] for i in c])[0]) for c in chunks) <= 64


def test_unplannable_phrases_raise_user_errors(tp):
    with pytest.raises(UserError) as err:
        plan_chunks(["cat", "word " * 300, "   "], tp)
    text = str(err.value)
    assert "phrase 1" in text and "max_text_len 256" in text and "phrase 2" in text and "no tokens" in text


def _det(scores, labels, boxes, phrases, no_target=False):
    return Detections(boxes=torch.tensor(boxes, dtype=torch.float), scores=torch.tensor(scores),
                      labels=torch.tensor(labels), phrases=phrases, no_target=no_target, image_size=(100, 100))


def test_merge_maps_labels_ranks_and_suppresses():
    a = _det([0.9, 0.4], [1, 0], [[0, 0, 10, 10], [50, 50, 60, 60]], ["b", "a"])
    b = _det([0.8, 0.7], [0, 1], [[1, 1, 10, 10], [80, 80, 90, 90]], ["c", "d"], no_target=True)
    merged = merge_chunk_detections([a, b], [[10, 11], [20, 21]])
    assert merged.labels.tolist() == [11, 20, 21, 10] and merged.phrases == ["b", "c", "d", "a"]
    assert merged.scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.4])
    assert not merged.no_target                       # only one chunk said "no target"
    top = merge_chunk_detections([a, b], [[10, 11], [20, 21]], num_select=3, nms_threshold=0.5)
    assert top.labels.tolist() == [11, 21]            # 20 overlaps 11 (IoU 0.81) across chunks; 10 not in top 3
    with pytest.raises(ValueError):
        merge_chunk_detections([a], [[10]])           # label 1 outside a one-phrase chunk


def _fake_model(targets, num_queries=3, size=(8, 10)):
    """A stand-in for the model's text side: query j of image i fires, with probability p,
    on the tokens of global phrase g when (and only when) the chunk holds g."""
    def run(chunk: PromptChunk) -> GroundingOutputs:
        b = len(targets)
        logits = torch.full((b, num_queries, MAX_LEN), -30.0)
        for i, row in enumerate(targets):
            for j, (g, p) in enumerate(row):
                if g in chunk.indices:
                    tokens = chunk.layout.phrase_map[chunk.indices.index(g)] > 0
                    logits[i, j, : tokens.shape[0]][tokens] = torch.logit(torch.tensor(p))
        boxes = torch.tensor([[0.2 + 0.3 * j, 0.5, 0.1, 0.1] for j in range(num_queries)]).expand(b, -1, -1)
        masks = torch.full((b, num_queries, 1, *size), -5.0)
        for j in range(num_queries):
            masks[:, j, 0, :, 3 * j: 3 * j + 2] = 5.0
        return GroundingOutputs(pred_logits=logits, pred_boxes=boxes.clone(), pred_masks=masks,
                                text_mask=torch.ones(b, MAX_LEN, dtype=torch.bool))
    return run


def test_detect_chunked_on_an_lvis_size_prompt(tp, lvis_like):
    chunks = build_chunks(lvis_like, tp)
    targets = [[(5, 0.9), (700, 0.6), (1202, 0.8)], [(1000, 0.7), (3, 0.5), (640, 0.95)]]
    post = PostProcessor(num_select=300, conf_threshold=0.1, nms_threshold=0.5)
    dets = detect_chunked(_fake_model(targets), chunks, post, [(40, 50), (30, 20)], [(32, 40), (32, 40)])
    assert dets[0].labels.tolist() == [5, 1202, 700]
    assert dets[0].phrases == [lvis_like[5], lvis_like[1202], lvis_like[700]]
    assert dets[0].scores.tolist() == pytest.approx([0.9, 0.8, 0.6], abs=1e-5)
    assert dets[1].labels.tolist() == [640, 1000, 3]
    assert dets[0].masks.shape == (3, 40, 50) and dets[1].masks.shape == (3, 30, 20)


def test_chunked_equals_single_pass_when_the_prompt_fits(tp):
    names = ["cat", "dog", "traffic light", "hot dog", "taxicab", "bicycle", "person", "tv remote"]
    targets = [[(2, 0.9), (6, 0.7), (7, 0.4)]]
    post = PostProcessor(num_select=50, conf_threshold=0.05, nms_threshold=0.5)
    sizes = ([(40, 50)], [(32, 40)])
    chunked = detect_chunked(_fake_model(targets), build_chunks(names, tp, max_phrases=3), post, *sizes)[0]
    whole = PromptChunk(list(range(len(names))), PromptLayout.from_phrases(names, tp))
    single = post(_fake_model(targets)(whole), [whole.layout], *sizes)[0]
    assert chunked.labels.tolist() == single.labels.tolist() == [2, 6, 7]
    assert chunked.phrases == single.phrases
    assert torch.allclose(chunked.scores, single.scores) and torch.allclose(chunked.boxes, single.boxes)
    assert torch.equal(chunked.masks, single.masks)


def test_chunked_prompt_on_the_model_reuses_the_image_features():
    """The real model (small preset, random weights): the image is encoded once, the text side
    once per chunk, and the merged detections index the full class list."""
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO

    torch.manual_seed(0)
    model = MaskGroundingDINO(backbone="resnet_tiny", hidden_dim=32, nheads=4, dim_feedforward=64, enc_layers=1,
                              dec_layers=1, num_queries=10, text_encoder_type="minilm", max_text_len=16,
                              num_region_queries=4).eval()
    tp16 = TextProcessor("minilm", max_text_len=16)
    names = ["cat", "dog", "traffic light", "hot dog", "taxicab", "bicycle", "person", "tv remote", "fire hydrant"]
    chunks = build_chunks(names, tp16)
    assert len(chunks) >= 2
    images, pixel_mask = torch.randn(1, 3, 64, 96), torch.zeros(1, 64, 96, dtype=torch.bool)
    pixel_mask[:, :, 80:] = True                          # the resized image is 64x80 inside the padding
    with torch.no_grad():
        image = model.encode_image(images, pixel_mask)
        texts = []

        def run_chunk(chunk):
            ti = tp16([chunk.caption])
            texts.append(chunk.caption)
            text = model.encode_text(ti.input_ids, ti.attention_mask, ti.position_ids, ti.token_type_ids,
                                     ti.text_token_mask)
            return model.forward_features(image, text)

        # IoI off: with random weights the region head's union mask is arbitrary.
        post = PostProcessor(num_select=20, nms_threshold=0.5, ioi_threshold=0.0)
        det = detect_chunked(run_chunk, chunks, post, [(128, 160)], [(64, 80)])[0]
    assert texts == [c.caption for c in chunks]
    assert len(det) > 0 and det.masks.shape == (len(det), 128, 160)
    assert all(det.phrases[i] == names[label] for i, label in enumerate(det.labels.tolist()))
    assert torch.all(det.scores[:-1] >= det.scores[1:])
