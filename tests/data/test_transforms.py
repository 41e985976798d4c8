"""Transforms keep boxes, masks and captions consistent: flip, resize, crop, LSJ, eval, fixed size."""

import random

import numpy as np
import pytest
import torch

from mask_grounding_dino.data.captions import build_expression_caption, build_od_caption
from mask_grounding_dino.data.synth import SceneParams, build_categories, image_rng, render_scene
from mask_grounding_dino.data.transforms import (EvalTransform, Normalize, RandomSizeCrop, Sample,
                                                 TrainTransform, boxes_to_cxcywh_normalised, crop, hflip,
                                                 mask_boxes, resize, short_side_size)

# Nearest-neighbour resampling puts a mask edge on the output pixel whose centre is nearest
# the scaled edge, so the mask's tight box may sit up to one pixel from the exactly scaled box.
RESIZE_TOL_PX = 1.0


def _scene_sample(index=0, h=96, w=128, swap=False) -> Sample:
    cats = build_categories()
    scene = render_scene(cats, h, w, SceneParams(min_objects=6, max_objects=6, empty_fraction=0.0),
                         image_rng(21, "train", index))
    masks = np.stack([o.mask for o in scene.objects])
    boxes = np.array([o.bbox_xyxy for o in scene.objects], np.float32)
    if swap:
        caption = build_expression_caption("the circle on the left", ["the circle on the left"] * len(boxes))
    else:
        labels = {c.id: c.name for c in cats}
        caption = build_od_caption([o.category.id for o in scene.objects], labels, 12, random.Random(0))
    return Sample(image=scene.image, boxes=boxes, masks=masks, caption=caption, swap_words=swap)


def _assert_consistent(sample: Sample, tol: float):
    assert sample.masks.shape == (len(sample.boxes), *sample.size)
    assert len(sample.caption.labels) == len(sample.boxes)
    tight, nonempty = mask_boxes(sample.masks)
    assert nonempty.all()
    assert np.abs(tight - sample.boxes).max(initial=0.0) <= tol + 1e-4
    h, w = sample.size
    assert (sample.boxes[:, [0, 2]] >= 0).all() and (sample.boxes[:, [0, 2]] <= w).all()
    assert (sample.boxes[:, [1, 3]] >= 0).all() and (sample.boxes[:, [1, 3]] <= h).all()


def test_flip_is_exact_and_swaps_words_only_for_grounding():
    sample = _scene_sample(swap=True)
    flipped = hflip(sample)
    _assert_consistent(flipped, 0.0)
    assert np.array_equal(flipped.image, sample.image[:, ::-1])
    assert flipped.caption.caption == "the circle on the right ."
    od = _scene_sample()
    assert hflip(od).caption.caption == od.caption.caption


@pytest.mark.parametrize("out_hw", [(200, 256), (48, 64), (77, 131)])
def test_resize_keeps_masks_and_boxes_together(out_hw):
    out = resize(_scene_sample(), *out_hw)
    assert out.image.shape == (*out_hw, 3) and out.image.dtype == np.uint8
    _assert_consistent(out, RESIZE_TOL_PX)


def test_crop_clamps_tightens_and_drops():
    sample = _scene_sample(index=2)
    out = crop(sample, top=20, left=30, height=50, width=60)
    assert out.size == (50, 60)
    _assert_consistent(out, 0.0)      # boxes are the tight boxes of the cropped masks
    assert 0 < len(out.boxes) <= len(sample.boxes)
    nothing = crop(sample, top=0, left=0, height=1, width=1)
    assert len(nothing.boxes) == len(nothing.caption.labels) <= 1


def test_crop_without_masks_clamps_boxes():
    sample = Sample(image=np.zeros((50, 50, 3), np.uint8),
                    boxes=np.array([[10, 10, 40, 40], [0, 0, 5, 5]], np.float32), caption=None)
    out = crop(sample, 20, 20, 30, 30)
    assert out.boxes.tolist() == [[0, 0, 20, 20]]


def test_random_size_crop_bounds_and_determinism():
    sample = _scene_sample(index=3)
    step = RandomSizeCrop(40, 80)
    a = step(sample, np.random.default_rng(5))
    b = step(sample, np.random.default_rng(5))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert 40 <= a.size[0] <= 80 and 40 <= a.size[1] <= 80
    _assert_consistent(a, 0.0)


def test_multiscale_train_pipeline():
    t = TrainTransform(scales=[64, 80, 96], random_resize_max_size=160, train_random_resize=[70, 90],
                       train_random_crop_min=50, train_random_crop_max=80, horizontal_flip_prob=0.5,
                       fixed_padding=True)
    sizes = set()
    for seed in range(12):
        out = t(_scene_sample(index=seed % 3), np.random.default_rng(seed))
        h, w = out.size
        assert min(h, w) in (64, 80, 96) or max(h, w) <= 160
        assert out.pad_to == ((160, 96) if h > w else (96, 160))
        # Crop branch: resize (<= 1 px), crop, resize again by up to 96/50 (< 2x): the first
        # pixel of error is scaled (< 2 px) and the second resize adds its own (<= 1 px).
        _assert_consistent(out, 3 * RESIZE_TOL_PX)
        sizes.add(out.size)
    assert len(sizes) > 2


def test_large_scale_jitter_square_crop_and_pad():
    t = TrainTransform(fixed_random_crop=112, horizontal_flip_prob=0.5)
    seen_small = seen_cropped = False
    norm = Normalize()
    for seed in range(10):
        out = t(_scene_sample(index=seed % 3), np.random.default_rng(seed))
        assert out.size[0] <= 112 and out.size[1] <= 112 and out.pad_to == (112, 112)
        _assert_consistent(out, RESIZE_TOL_PX)
        seen_small |= max(out.size) < 112
        seen_cropped |= out.size == (112, 112)
        image = norm(out)
        assert image.shape == (3, 112, 112)
        assert torch.all(image[:, out.size[0]:, :] == 0) and torch.all(image[:, :, out.size[1]:] == 0)
    assert seen_small and seen_cropped


def test_eval_resize_short_side_and_cap():
    out = EvalTransform(test_random_resize=192, random_resize_max_size=400, fixed_padding=False)(_scene_sample())
    assert out.size == (192, 256) and out.pad_to is None
    _assert_consistent(out, RESIZE_TOL_PX)
    capped = EvalTransform(test_random_resize=192, random_resize_max_size=200, fixed_padding=True)(_scene_sample())
    assert max(capped.size) <= 200 and capped.pad_to == (192, 200)
    assert short_side_size(480, 640, 800, 1333) == (800, 1066)
    assert short_side_size(100, 1000, 800, 1333) == (133, 1330)


def test_fixed_input_size():
    out = EvalTransform(input_width=96, input_height=64)(_scene_sample())
    assert out.size == (64, 96) and out.pad_to is None
    _assert_consistent(out, RESIZE_TOL_PX)


def test_normalize_and_box_normalisation():
    image = np.full((2, 3, 3), 255, np.uint8)
    out = Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.5])(Sample(image=image, boxes=np.zeros((0, 4))))
    assert out.shape == (3, 2, 3) and torch.allclose(out[1], torch.full((2, 3), 2.0))
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    flipped = hflip(Sample(image=pixels, boxes=np.zeros((0, 4), np.float32)))   # a negative-stride view
    padded = Normalize()(Sample(image=flipped.image, boxes=flipped.boxes, pad_to=(6, 9)))
    expect = (torch.from_numpy(pixels[:, ::-1].copy()).permute(2, 0, 1) / 255.0
              - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert padded.shape == (3, 6, 9) and torch.allclose(padded[:, :5, :7], expect, atol=1e-5)   # float32 rounding
    assert not padded[:, 5:].any() and not padded[:, :, 7:].any()
    cxcywh = boxes_to_cxcywh_normalised(np.array([[0, 0, 30, 10]], np.float32), (20, 60))
    assert torch.allclose(cxcywh, torch.tensor([[0.25, 0.25, 0.5, 0.5]]))
