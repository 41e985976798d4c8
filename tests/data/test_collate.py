"""Collate: padding and padding masks, size divisibility, token alignment, Batch.to."""

import numpy as np
import pytest
import torch

from mask_grounding_dino.data.batch import Batch, Target
from mask_grounding_dino.data.captions import build_eval_caption, build_expression_caption
from mask_grounding_dino.data.collate import Collator, pad_images
from mask_grounding_dino.data.datasets import SampleMeta, TargetBuilder
from mask_grounding_dino.data.transforms import FixedPad, Normalize, Sample
from mask_grounding_dino.text import TextProcessor

T = 32


@pytest.fixture(scope="module")
def tp():
    return TextProcessor("bert-base-uncased", max_text_len=T)


def _item(tp, h, w, caption, boxes, pad_to=None):
    masks = np.zeros((len(boxes), h, w), bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        m[y1:y2, x1:x2] = True
    step = (lambda s, rng: s) if pad_to is None else FixedPad(*pad_to)
    builder = TargetBuilder(text_processor=tp, transform=step, normalize=Normalize())
    image = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    sample = Sample(image=image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4), masks=masks, caption=caption)
    return builder(sample, SampleMeta(image_id=h, orig_size=(h, w)), np.random.default_rng(0))


def test_padding_mask_and_zero_padding(tp):
    a = _item(tp, 40, 50, build_eval_caption({0: "red circle", 1: "blue square"}, [1]), [[5, 5, 20, 30]])
    b = _item(tp, 64, 30, build_expression_caption("the tv remote on the left", []), [])
    batch = Collator(text_processor=tp, size_divisibility=32)([a, b])
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.images.shape == (2, 3, 64, 64) and batch.pixel_mask.shape == (2, 64, 64)
    for i, (h, w) in enumerate([(40, 50), (64, 30)]):
        assert not batch.pixel_mask[i, :h, :w].any()
        assert batch.pixel_mask[i].sum() == 64 * 64 - h * w
        assert torch.equal(batch.images[i, :, :h, :w], [a, b][i][0])
        assert (batch.images[i][:, batch.pixel_mask[i]] == 0).all()
    plain = Collator(text_processor=tp, size_divisibility=1)([a, b])
    assert plain.images.shape == (2, 3, 64, 50)


def test_fixed_padding_counts_as_padding(tp):
    item = _item(tp, 20, 30, build_eval_caption({0: "cat"}, [0]), [[1, 1, 9, 9]], pad_to=(24, 40))
    assert item[0].shape == (3, 24, 40) and item[1].size == (20, 30)
    batch = Collator(text_processor=tp, size_divisibility=1)([item])
    assert batch.images.shape == (1, 3, 24, 40)
    assert batch.pixel_mask[0, 20:].all() and batch.pixel_mask[0, :, 30:].all() and not batch.pixel_mask[0, :20, :30].any()


def test_positive_maps_align_with_batch_tokens(tp):
    a = _item(tp, 32, 32, build_eval_caption({0: "giraffe", 1: "tv remote"}, [1, 0]), [[1, 1, 9, 9], [2, 2, 8, 8]])
    b = _item(tp, 32, 32, build_expression_caption("a very long expression about the giraffe", []), [])
    batch = Collator(text_processor=tp)([a, b])
    assert batch.text.input_ids.shape[1] <= T
    ids = batch.text.input_ids[0]
    words = [tp.tokenizer.decode(ids[torch.nonzero(row).flatten()]) for row in batch.targets[0].positive_map]
    assert words == ["tv remote", "giraffe"]
    assert batch.targets[1].positive_map.shape == (0, T)


def test_batch_to_and_width_check(tp):
    a = _item(tp, 16, 16, build_eval_caption({0: "cat"}, [0]), [[1, 1, 5, 5]])
    moved = Collator(text_processor=tp)([a]).to("cpu")
    assert moved.targets[0].masks.dtype == torch.bool and moved.text.input_ids.device.type == "cpu"
    other = TextProcessor("bert-base-uncased", max_text_len=16)
    with pytest.raises(ValueError, match="max_text_len"):
        Collator(text_processor=other)([a])


def test_pad_images_rejects_empty():
    with pytest.raises(ValueError):
        pad_images([], [])
    t = Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long), positive_map=torch.zeros(0, 4),
               masks=None, phrases=[], phrase_map=torch.zeros(0, 4), caption="", empty=True, image_id=0,
               size=(2, 2), orig_size=(2, 2), class_ids=torch.zeros(0, dtype=torch.long))
    assert len(t) == 0 and not t.has_masks and t.to("cpu").masks is None
