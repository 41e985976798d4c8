"""Post-processing on hand-built outputs: TAO's semantics case by case, plus the Detections container."""

import types

import pytest
import torch

from mask_grounding_dino.errors import SpecError, UserError
from mask_grounding_dino.model.outputs import GroundingOutputs
from mask_grounding_dino.model.postprocess import PostProcessor, PromptLayout, ioi_keep
from mask_grounding_dino.model.results import Detections
from mask_grounding_dino.text import TextProcessor

T = 16          # text length of the fake outputs (the model pads to max_text_len)
LOW = -30.0     # a logit whose probability is ~1e-13: "off"


@pytest.fixture(scope="module")
def tp():
    return TextProcessor("minilm", max_text_len=256)


def logit(p):
    return torch.logit(torch.tensor(float(p))).item()


def outputs(logits, boxes=None, **extra):
    b, q, _ = logits.shape
    if boxes is None:  # distinct, non-overlapping boxes so NMS keeps everything
        boxes = torch.tensor([[0.1 + 0.8 * i / max(q, 1), 0.5, 0.05, 0.05] for i in range(q)]).expand(b, q, 4)
    return GroundingOutputs(pred_logits=logits, pred_boxes=boxes.clone(), text_mask=torch.ones(b, T, dtype=torch.bool),
                            **extra)


def run(post, out, prompts, orig=((100, 200),), inp=None):
    inp = inp or orig
    return post(out, prompts, list(orig), list(inp))


# ----------------------------------------------------------------------------- prompts
def test_layouts_from_class_list_and_caption(tp):
    od = PromptLayout.from_phrases(["traffic light", "cat"], tp)
    assert od.caption == "traffic light . cat ."
    # [CLS] traffic light . cat . [SEP]
    assert od.phrase_map.tolist() == [[0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0]]
    vg = PromptLayout.from_caption("a taxicab . red minivan .", tp)
    assert vg.phrases == ["a taxicab", "red minivan"]
    given = PromptLayout.from_caption("The Red minivan on the left", tp, phrases=["red minivan", "bicycle"])
    assert given.phrase_map[0].sum() == 3 and given.phrase_map[1].sum() == 0   # red mini ##van; not found


# ----------------------------------------------------------------------------- scores
def test_od_score_is_mean_token_probability(tp):
    prompt = PromptLayout.from_phrases(["traffic light", "cat"], tp)
    logits = torch.full((1, 2, T), LOW)
    logits[0, 0, 1], logits[0, 0, 2], logits[0, 0, 4] = logit(0.8), logit(0.4), logit(0.2)
    det = run(PostProcessor(num_select=2, nms_threshold=0), outputs(logits), [prompt])[0]
    assert det.labels.tolist() == [0, 1]
    assert det.scores.tolist() == pytest.approx([0.6, 0.2], abs=1e-6)   # (0.8 + 0.4) / 2 and 0.2
    assert det.phrases == ["traffic light", "cat"]


def test_vg_scores_are_token_probabilities_and_delimiters_never_win(tp):
    prompt = PromptLayout.from_caption("a taxicab . red minivan .", tp)
    # [CLS]0 a1 taxi2 ##ca3 ##b4 .5 red6 mini7 ##van8 .9 [SEP]10
    logits = torch.full((1, 2, T), LOW)
    logits[0, :, [0, 5, 9, 10]] = 10.0               # special and delimiter tokens: high but not phrases
    logits[0, 0, 3] = logit(0.9)
    logits[0, 1, 7] = logit(0.6)
    det = run(PostProcessor(mode="VG", num_select=2, nms_threshold=0), outputs(logits), [prompt])[0]
    assert det.scores.tolist() == pytest.approx([0.9, 0.6], abs=1e-6)
    assert det.labels.tolist() == [0, 1]


# ----------------------------------------------------------------------------- phrases
def test_phrases_are_whole_words_of_one_phrase(tp):
    prompt = PromptLayout.from_caption("a taxicab . red minivan .", tp)
    logits = torch.full((1, 3, T), LOW)
    # Query 0 fires on word pieces of "taxicab" and on "mini" of the other phrase.
    logits[0, 0, 3], logits[0, 0, 4], logits[0, 0, 7] = logit(0.9), logit(0.5), logit(0.8)
    # Query 1: "red" passes text_threshold 0.3, "mini" does not.
    logits[0, 1, 6], logits[0, 1, 7] = logit(0.35), logit(0.25)
    # Query 2: only "##van", below text_threshold: the phrase falls back to its full text.
    logits[0, 2, 8] = logit(0.25)
    def found(text_threshold):
        post = PostProcessor(mode="VG", num_select=10, nms_threshold=0, text_threshold=text_threshold)
        det = run(post, outputs(logits), [prompt])[0]
        assert not any("#" in p for p in det.phrases)
        return {(round(s, 4), p) for s, p in zip(det.scores.tolist(), det.phrases)}

    got = found(0.3)
    assert (0.9, "taxicab") in got          # never "##cab", never "taxicab minivan"
    assert (0.8, "minivan") in got          # the same query under the other phrase: that phrase only
    assert (0.35, "red") in got
    assert (0.25, "red minivan") in got
    assert (0.35, "red minivan") in found(0.2)      # a lower text_threshold lets "mini" in


def test_truncated_phrases_never_win(tp):
    short = TextProcessor("minilm", max_text_len=6)   # [CLS] cat . dog . [SEP]: "bird" is cut off
    prompt = PromptLayout.from_phrases(["cat", "dog", "bird"], short)
    assert prompt.phrase_map.sum(-1).tolist() == [1, 1, 0]
    logits = torch.full((1, 1, T), 5.0)
    det = run(PostProcessor(num_select=10, nms_threshold=0), outputs(logits), [prompt])[0]
    assert sorted(det.labels.tolist()) == [0, 1]


# ----------------------------------------------------------------------------- boxes
def test_boxes_in_original_pixels_and_clamped(tp):
    prompt = PromptLayout.from_phrases(["cat"], tp)
    logits = torch.full((1, 2, T), LOW)
    logits[0, 0, 1], logits[0, 1, 1] = 2.0, 1.0
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.4, 0.4]]])
    det = run(PostProcessor(nms_threshold=0), outputs(logits, boxes), [prompt], orig=[(100, 200)], inp=[(50, 100)])[0]
    assert det.boxes.flatten().tolist() == pytest.approx([50, 25, 150, 75, 140, 0, 200, 30], abs=1e-4)


# ----------------------------------------------------------------------------- masks
def test_masks_at_original_size_with_padding_cropped(tp):
    prompt = PromptLayout.from_phrases(["cat"], tp)
    logits = torch.full((2, 1, T), LOW)
    logits[:, 0, 1] = 3.0
    # Padded input 32x40 -> stride-4 grid 8x10; the resized image is the top-left 24x20 (6x5 cells).
    masks = torch.full((2, 1, 1, 8, 10), -10.0)
    masks[..., :, :2] = 10.0          # object: the two left columns of cells (input x < 8)
    # Padding "on" (p = 0.73). As in TAO, the crop follows the x4 upsampling, so a padding logit
    # leaks half a cell into the image's border; +1 against -10 stays below zero there.
    masks[..., 6:, :] = 1.0
    masks[..., :, 5:] = 1.0
    out = outputs(logits, pred_masks=masks)
    dets = run(PostProcessor(nms_threshold=0), out, [prompt] * 2, orig=[(48, 40), (24, 30)], inp=[(24, 20)] * 2)
    # x4 bilinear puts the edge at input x = 7.5; the x2 resize to 48x40 puts it at X = 15.5.
    first = dets[0].masks[0]
    assert first.shape == (48, 40) and first.dtype == torch.bool
    expected = torch.zeros(48, 40, dtype=torch.bool)
    expected[:, :16] = True
    assert torch.equal(first, expected)
    # Another original size (non-integer scale): same object, same relative extent.
    second = dets[1].masks[0]
    assert second.shape == (24, 30)
    cols = second.any(0).nonzero().flatten()
    assert cols.min() == 0 and cols.max() == 11   # edge at 7.5 * 30 / 20 = 11.25


def test_no_mask_branch_gives_no_masks(tp):
    prompt = PromptLayout.from_phrases(["cat"], tp)
    logits = torch.full((1, 1, T), 2.0)
    assert run(PostProcessor(), outputs(logits), [prompt])[0].masks is None


# ----------------------------------------------------------------------------- IoI
def _ioi_case():
    # Union at stride 8 (4x5): foreground in the two left columns.
    union = torch.zeros(1, 2, 4, 5)
    union[0, 1, :, :2] = 5.0
    masks = torch.full((1, 3, 8, 10), -5.0)
    masks[0, 0, :, 0:3] = 5.0         # inside the foreground
    masks[0, 1, :, 6:10] = 5.0        # outside
    masks[0, 2, :, 3:7] = 5.0         # half in (cols 3-4), half out (cols 5-6)
    return union, masks


def test_ioi_filter_keeps_and_drops():
    union, masks = _ioi_case()
    # The bilinear x2 upsampling grows the foreground to stride-4 columns 0-4 (TAO's rule).
    assert ioi_keep(union, masks, 0.5).tolist() == [[True, False, False]]   # 0.5 is not > 0.5
    assert ioi_keep(union, masks, 0.4).tolist() == [[True, False, True]]


def test_ioi_through_the_postprocessor(tp):
    prompt = PromptLayout.from_phrases(["cat"], tp)
    union, masks = _ioi_case()
    logits = torch.full((1, 3, T), LOW)
    logits[0, :, 1] = torch.tensor([1.0, 2.0, 3.0])
    out = outputs(logits, pred_masks=masks[:, :, None], union_mask_logits=union)
    kept = run(PostProcessor(nms_threshold=0, ioi_threshold=0.4), out, [prompt], orig=[(32, 40)])[0]
    assert kept.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(v)).item() for v in (3.0, 1.0)])
    off = run(PostProcessor(nms_threshold=0, ioi_threshold=0.0), out, [prompt], orig=[(32, 40)])[0]
    assert len(off) == 3


# ----------------------------------------------------------------------------- no target
def test_no_target_suppresses_in_vg_and_is_reported_in_od(tp):
    prompt = PromptLayout.from_caption("a red car", tp)
    logits = torch.full((2, 1, T), LOW)
    logits[:, 0, 2] = 3.0
    flags = torch.tensor([[0.0, 4.0], [4.0, 0.0]])    # image 0: "no target"
    out = outputs(logits, pred_masks=torch.zeros(2, 1, 1, 8, 8), no_targets=flags)
    vg = run(PostProcessor(mode="VG"), out, [prompt] * 2, orig=[(32, 32)] * 2)
    assert len(vg[0]) == 0 and vg[0].no_target and vg[0].masks.shape == (0, 32, 32)
    assert len(vg[1]) == 1 and not vg[1].no_target
    od_prompt = PromptLayout.from_phrases(["car"], tp)
    od = run(PostProcessor(mode="OD"), out, [od_prompt] * 2, orig=[(32, 32)] * 2)
    assert len(od[0]) == 1 and od[0].no_target


# ----------------------------------------------------------------------------- thresholds, NMS
def _three_boxes(tp):
    prompt = PromptLayout.from_phrases(["cat", "dog"], tp)     # [CLS] cat . dog . [SEP]
    logits = torch.full((1, 3, T), LOW)
    logits[0, 0, 1], logits[0, 1, 3], logits[0, 2, 1] = logit(0.9), logit(0.8), logit(0.7)
    boxes = torch.tensor([[[0.30, 0.5, 0.4, 0.4], [0.32, 0.5, 0.4, 0.4], [0.8, 0.5, 0.2, 0.2]]])
    return prompt, outputs(logits, boxes)


def test_conf_threshold_keeps_scores_at_or_above(tp):
    prompt, out = _three_boxes(tp)
    det = run(PostProcessor(num_select=3, nms_threshold=0, conf_threshold=0.8), out, [prompt])[0]
    assert det.scores.tolist() == pytest.approx([0.9, 0.8])


def test_nms_is_class_agnostic_by_default(tp):
    prompt, out = _three_boxes(tp)          # boxes 0 and 1 overlap (IoU 0.9), with different labels
    agnostic = run(PostProcessor(num_select=3, nms_threshold=0.5), out, [prompt])[0]
    assert agnostic.scores.tolist() == pytest.approx([0.9, 0.7])
    aware = run(PostProcessor(num_select=3, nms_threshold=0.5, class_aware_nms=True), out, [prompt])[0]
    assert aware.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    off = run(PostProcessor(num_select=3, nms_threshold=0.0), out, [prompt])[0]
    assert len(off) == 3


def test_num_select_bounds_candidates(tp):
    prompt, out = _three_boxes(tp)
    assert len(run(PostProcessor(num_select=1, nms_threshold=0), out, [prompt])[0]) == 1


# ----------------------------------------------------------------------------- batch
def test_batch_equals_one_image_at_a_time(tp):
    prompts = [PromptLayout.from_caption("a taxicab . red minivan .", tp), PromptLayout.from_caption("the dog", tp)]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, T, generator=g) * 3
    boxes = torch.rand(2, 6, 4, generator=g) * 0.5 + 0.25
    masks = torch.randn(2, 6, 1, 8, 10, generator=g) * 3
    union = torch.randn(2, 2, 4, 5, generator=g)
    out = outputs(logits, boxes, pred_masks=masks, union_mask_logits=union)
    post = PostProcessor(mode="VG", num_select=10, ioi_threshold=0.2)
    orig, inp = [(50, 60), (40, 30)], [(30, 40), (32, 24)]
    both = post(out, prompts, orig, inp)
    for i in range(2):
        one = outputs(logits[i:i + 1], boxes[i:i + 1], pred_masks=masks[i:i + 1], union_mask_logits=union[i:i + 1])
        alone = post(one, [prompts[i]], [orig[i]], [inp[i]])[0]
        assert torch.equal(both[i].labels, alone.labels) and both[i].phrases == alone.phrases
        assert torch.allclose(both[i].scores, alone.scores) and torch.allclose(both[i].boxes, alone.boxes)
        assert torch.equal(both[i].masks, alone.masks)


# ----------------------------------------------------------------------------- settings
def test_invalid_settings_name_the_key():
    with pytest.raises(SpecError) as err:
        PostProcessor(mode="XX", nms_threshold=1.5)
    text = str(err.value)
    assert "data_type" in text and "OD, VG" in text and "nms_threshold" in text
    assert isinstance(err.value, UserError)


def test_from_config():
    model = types.SimpleNamespace(num_select=50)
    section = types.SimpleNamespace(text_threshold=0.25, conf_threshold=0.5, nms_threshold=0.3, ioi_threshold=0.6)
    post = PostProcessor.from_config(model, section, "VG")
    assert (post.num_select, post.text_threshold, post.conf_threshold, post.nms_threshold, post.ioi_threshold,
            post.mode, post.suppress_no_target) == (50, 0.25, 0.5, 0.3, 0.6, "VG", True)


# ----------------------------------------------------------------------------- container
def _dets(n=3):
    return Detections(boxes=torch.arange(4.0 * n).reshape(n, 4), scores=torch.linspace(0.9, 0.5, n),
                      labels=torch.arange(n), phrases=[f"p{i}" for i in range(n)],
                      masks=torch.zeros(n, 4, 5, dtype=torch.bool), image_size=(4, 5))


def test_detections_container():
    det = _dets()
    assert len(det) == 3
    picked = det.select(torch.tensor([True, False, True]))
    assert picked.phrases == ["p0", "p2"] and picked.masks.shape == (2, 4, 5)
    assert det.select([2, 0]).labels.tolist() == [2, 0] and len(det.select(slice(1, None))) == 2
    arrays = det.to("cpu").numpy()
    assert arrays.boxes.shape == (3, 4) and arrays.masks.dtype == bool and len(arrays) == 3
    both = Detections.cat([det, det.select([1])])
    assert len(both) == 4 and both.phrases[-1] == "p1"
    empty = Detections.empty((4, 5), with_masks=True, no_target=True)
    assert len(empty) == 0 and empty.masks.shape == (0, 4, 5) and empty.no_target
    with pytest.raises(ValueError):
        Detections(boxes=torch.zeros(2, 4), scores=torch.zeros(2), labels=torch.zeros(2), phrases=["a"])


def test_prompt_without_phrases_gives_nothing():
    empty = PromptLayout(phrases=[], phrase_map=torch.zeros(0, T))
    out = outputs(torch.randn(1, 3, T), pred_masks=torch.randn(1, 3, 1, 4, 4))
    for mode in ("OD", "VG"):
        det = run(PostProcessor(mode=mode), out, [empty], orig=[(10, 12)])[0]
        assert len(det) == 0 and det.masks.shape == (0, 10, 12)
