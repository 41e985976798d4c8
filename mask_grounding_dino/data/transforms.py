"""Box- and mask-aware augmentation, TAO's pipelines, on numpy images (cv2, no pixel loops).

Training (``fixed_random_crop`` unset): flip, then either a multi-scale resize of the short
side (``scales``, long side capped at ``random_resize_max_size``) or resize
(``train_random_resize``) -> random crop (``train_random_crop_min/max``) -> multi-scale
resize, with equal chance; then normalise, and pad to the largest size when ``fixed_padding``.
Training with ``fixed_random_crop`` = S (large-scale jitter): flip, resize to fit S x S times
a scale in [0.1, 2], random S x S crop, normalise, pad to S x S.
Evaluation: short side to ``test_random_resize`` (long side capped), or exactly
``input_width`` x ``input_height`` when both are set; normalise (+ fixed padding).

Choices (deviations from TAO, for correctness):
* Flips swap "left"/"right" ("leftmost"/"rightmost") in grounding captions and expressions,
  so "the cup on the left" still names the right object. TAO's flip leaves the text alone;
  MDETR swaps by substring (turning "bright" into "bleft"); here whole words are swapped and
  ``tokens_positive`` spans follow. Class names of detection data are never changed.
* After a crop, an instance with a mask gets the tight box of its cropped mask (clipped to
  its cropped box), not the clamped original box, which would be loose for non-rectangular
  objects; instances whose box or mask becomes empty are dropped with their masks.
* Masks are resized with exact nearest-neighbour sampling (pixel centres), images with
  bilinear (upscaling) or area averaging (downscaling).
* Fixed padding never crops: an image larger than the padding target keeps its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np
import torch

from .captions import CaptionSample

_CV2_MAX_CHANNELS = 512


@dataclass
class Sample:
    """An image and its instances while being augmented.

    image: [H, W, 3] uint8 RGB. boxes: [N, 4] float32 xyxy pixels. masks: [N, H, W] bool or None.
    caption: the caption and instance->phrase links (kept in step with dropped instances).
    swap_words: a flip swaps left/right words in the caption (grounding data).
    pad_to: (h, w) the normalised image is zero padded to (fixed padding), or None.
    """

    image: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray | None = None
    caption: CaptionSample | None = None
    swap_words: bool = False
    pad_to: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def select(self, keep: np.ndarray) -> "Sample":
        """Keep the instances where ``keep`` ([N] bool) is True."""
        if keep.all():
            return self
        index = np.flatnonzero(keep)
        return replace(self, boxes=self.boxes[index],
                       masks=None if self.masks is None else self.masks[index],
                       caption=None if self.caption is None else self.caption.select(index.tolist()))


class Transform(Protocol):
    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample: ...


# --- Geometry -------------------------------------------------------------------------------

def short_side_size(h: int, w: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """(h, w) with the short side ``size`` and the long side at most ``max_size`` (TAO's rule,
    including its truncation of the long side)."""
    if max_size:
        short, long = float(min(h, w)), float(max(h, w))
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return max(1, int(size * h / w)), size
    return size, max(1, int(size * w / h))


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight xyxy boxes ``[N, 4]`` float32 of ``[N, H, W]`` masks (right/bottom exclusive) and
    ``[N]`` bool "mask not empty"."""
    n = masks.shape[0]
    rows, cols = masks.any(axis=2), masks.any(axis=1)           # [N, H], [N, W]
    nonempty = rows.any(axis=1)
    h, w = masks.shape[1], masks.shape[2]
    y1 = rows.argmax(axis=1)
    y2 = h - rows[:, ::-1].argmax(axis=1)
    x1 = cols.argmax(axis=1)
    x2 = w - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32).reshape(n, 4)
    boxes[~nonempty] = 0.0
    return boxes, nonempty


def resize_masks(masks: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``[N, H, W]`` bool -> ``[N, out_h, out_w]`` bool, exact nearest neighbour, in chunks of
    cv2's channel limit."""
    n = masks.shape[0]
    if n == 0:
        return np.zeros((0, out_h, out_w), bool)
    out = np.empty((n, out_h, out_w), bool)
    for start in range(0, n, _CV2_MAX_CHANNELS):
        chunk = np.ascontiguousarray(masks[start:start + _CV2_MAX_CHANNELS].transpose(1, 2, 0), dtype=np.uint8)
        res = cv2.resize(chunk, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
        if res.ndim == 2:
            res = res[:, :, None]
        out[start:start + res.shape[2]] = res.transpose(2, 0, 1).astype(bool)
    return out


def resize(sample: Sample, out_h: int, out_w: int) -> Sample:
    """Resize image, boxes and masks to exactly ``out_h`` x ``out_w``."""
    h, w = sample.size
    if (out_h, out_w) == (h, w):
        return sample
    interp = cv2.INTER_AREA if out_h * out_w < h * w else cv2.INTER_LINEAR
    image = cv2.resize(np.ascontiguousarray(sample.image), (out_w, out_h), interpolation=interp)
    scale = np.array([out_w / w, out_h / h, out_w / w, out_h / h], np.float32)
    masks = None if sample.masks is None else resize_masks(sample.masks, out_h, out_w)
    return replace(sample, image=image, boxes=sample.boxes * scale, masks=masks)


def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Crop to the region; boxes are clamped, instances with masks get tight mask boxes, and
    instances left empty are dropped."""
    image = sample.image[top:top + height, left:left + width]
    h, w = image.shape[:2]
    boxes = sample.boxes - np.array([left, top, left, top], np.float32)
    boxes = np.minimum(np.maximum(boxes, 0.0), np.array([w, h, w, h], np.float32))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    masks = sample.masks
    if masks is not None:
        had_mask = masks.any(axis=(1, 2)) if len(masks) else np.zeros(0, bool)
        masks = masks[:, top:top + height, left:left + width]
        tight, nonempty = mask_boxes(masks)
        # Instances annotated with a mask: the box follows the visible part of the mask.
        boxes = np.where(had_mask[:, None],
                         np.concatenate([np.maximum(boxes[:, :2], tight[:, :2]),
                                         np.minimum(boxes[:, 2:], tight[:, 2:])], axis=1), boxes)
        keep &= ~had_mask | nonempty
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    out = replace(sample, image=image, boxes=boxes.astype(np.float32), masks=masks)
    return out.select(keep)


def hflip(sample: Sample) -> Sample:
    """Mirror left-right; grounding captions swap "left"/"right"."""
    w = sample.size[1]
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - sample.boxes[:, 2], w - sample.boxes[:, 0]
    caption = sample.caption
    if caption is not None and sample.swap_words:
        caption = caption.swap_left_right()
    return replace(sample, image=sample.image[:, ::-1], boxes=boxes,
                   masks=None if sample.masks is None else sample.masks[:, :, ::-1], caption=caption)


def clip_boxes(sample: Sample) -> Sample:
    """Clamp boxes to the image and drop degenerate ones (with their masks).

    Training records reach the transforms without degenerate boxes: the dataset removes and
    reports those once when it is built (``data/box_checks.py``). What is dropped here during
    training comes from augmentation (a crop that leaves a box empty), which is not reported."""
    h, w = sample.size
    boxes = np.minimum(np.maximum(sample.boxes, 0.0), np.array([w, h, w, h], np.float32))
    sample = replace(sample, boxes=boxes.astype(np.float32))
    return sample.select((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))


# --- Random steps -------------------------------------------------------------------------------

@dataclass
class Compose:
    steps: Sequence[Transform]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for step in self.steps:
            sample = step(sample, rng)
        return sample


@dataclass
class RandomSelect:
    """``first`` with probability ``p``, else ``second``."""

    first: Transform
    second: Transform
    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return self.first(sample, rng) if rng.uniform() < self.p else self.second(sample, rng)


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return hflip(sample) if rng.uniform() < self.p else sample


@dataclass
class RandomResize:
    """Short side to a random choice of ``sizes`` (long side capped at ``max_size``)."""

    sizes: Sequence[int]
    max_size: int | None = None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        size = int(self.sizes[int(rng.integers(0, len(self.sizes)))])
        return resize(sample, *short_side_size(*sample.size, size, self.max_size))


@dataclass
class FixedResize:
    """Exactly ``width`` x ``height`` (aspect ratio not kept; TAO's input_width/height)."""

    width: int
    height: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return resize(sample, int(self.height), int(self.width))


@dataclass
class RandomSizeCrop:
    """A crop of random width and height in [min_size, max_size] (at most the image)."""

    min_size: int
    max_size: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.size
        cw = int(rng.integers(min(self.min_size, w), max(min(self.min_size, w), min(w, self.max_size)) + 1))
        ch = int(rng.integers(min(self.min_size, h), max(min(self.min_size, h), min(h, self.max_size)) + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop(sample, top, left, ch, cw)


@dataclass
class RandomCrop:
    """A ``height`` x ``width`` crop (smaller when the image is) at a random place."""

    height: int
    width: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.size
        ch, cw = min(h, self.height), min(w, self.width)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop(sample, top, left, ch, cw)


@dataclass
class ResizeScale:
    """Large-scale jitter: fit the image into (target x scale), scale ~ U[min_scale, max_scale]."""

    min_scale: float
    max_scale: float
    target_height: int
    target_width: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.size
        scale = rng.uniform(self.min_scale, self.max_scale)
        factor = min(self.target_width * scale / w, self.target_height * scale / h)
        return resize(sample, max(1, int(round(h * factor))), max(1, int(round(w * factor))))


@dataclass
class FixedPad:
    """Record the padding target: (target_max, target_min) for portrait images, else
    (target_min, target_max), never smaller than the image (TAO's FixedPad)."""

    target_min: int
    target_max: int

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.size
        ph, pw = (self.target_max, self.target_min) if h > w else (self.target_min, self.target_max)
        return replace(sample, pad_to=(max(h, int(ph)), max(w, int(pw))))


# --- Normalisation --------------------------------------------------------------------------------

class Normalize:
    """uint8 RGB ``[H, W, 3]`` -> float ``[3, H', W']``: ``(x / 255 - mean) / std``, then zero
    padded right/bottom to ``sample.pad_to`` (padding is 0 after normalisation, as in TAO)."""

    def __init__(self, *, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)):
        self.mean = np.asarray([float(m) for m in mean], np.float32)
        self.std = np.asarray([float(s) for s in std], np.float32)
        # x / 255 - mean) / std == x * scale - shift, in one pass over the pixels.
        self._scale = (1.0 / (255.0 * self.std)).astype(np.float32)
        self._shift = (self.mean / self.std).astype(np.float32)

    @classmethod
    def from_config(cls, aug) -> "Normalize":
        return cls(mean=aug.input_mean, std=aug.input_std)

    def __call__(self, sample: Sample) -> torch.Tensor:
        # numpy, single-threaded: torch's intra-op threads only add contention for one image.
        h, w = sample.size
        ph, pw = sample.pad_to if sample.pad_to is not None else (h, w)
        out = np.zeros((3, ph, pw), np.float32)
        pixels = sample.image.astype(np.float32)
        pixels *= self._scale
        pixels -= self._shift
        out[:, :h, :w] = pixels.transpose(2, 0, 1)
        return torch.from_numpy(out)


# --- TAO's pipelines ------------------------------------------------------------------------------

class TrainTransform:
    """Training augmentation (see the module docstring). Keyword arguments use TAO's keys."""

    def __init__(self, *, scales: Sequence[int] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
                 random_resize_max_size: int = 1333, train_random_resize: Sequence[int] = (400, 500, 600),
                 train_random_crop_min: int = 384, train_random_crop_max: int = 600,
                 horizontal_flip_prob: float = 0.5, fixed_padding: bool = True,
                 fixed_random_crop: int | None = None):
        flip = RandomHorizontalFlip(min(1.0, float(horizontal_flip_prob)))
        if fixed_random_crop:
            size = int(fixed_random_crop)
            steps: list[Transform] = [flip, ResizeScale(0.1, 2.0, size, size), RandomCrop(size, size),
                                      FixedPad(size, size)]
        else:
            multi = RandomResize(list(scales), random_resize_max_size)
            steps = [flip, RandomSelect(multi, Compose([
                RandomResize(list(train_random_resize)),
                RandomSizeCrop(int(train_random_crop_min), int(train_random_crop_max)),
                multi]))]
            if fixed_padding:
                steps.append(FixedPad(max(scales), random_resize_max_size))
        self.pipeline = Compose(steps)

    @classmethod
    def from_config(cls, aug) -> "TrainTransform":
        return cls(scales=aug.scales, random_resize_max_size=aug.random_resize_max_size,
                   train_random_resize=aug.train_random_resize, train_random_crop_min=aug.train_random_crop_min,
                   train_random_crop_max=aug.train_random_crop_max,
                   horizontal_flip_prob=aug.horizontal_flip_prob, fixed_padding=aug.fixed_padding,
                   fixed_random_crop=aug.fixed_random_crop)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return clip_boxes(self.pipeline(clip_boxes(sample), rng))


class EvalTransform:
    """Validation / test / inference resizing (deterministic)."""

    def __init__(self, *, test_random_resize: int = 800, random_resize_max_size: int = 1333,
                 fixed_padding: bool = True, input_width: int | None = None, input_height: int | None = None):
        if input_width and input_height:
            steps: list[Transform] = [FixedResize(int(input_width), int(input_height))]
        else:
            steps = [RandomResize([int(test_random_resize)], random_resize_max_size)]
            if fixed_padding:
                steps.append(FixedPad(int(test_random_resize), random_resize_max_size))
        self.pipeline = Compose(steps)

    @classmethod
    def from_config(cls, aug, input_width: int | None = None, input_height: int | None = None) -> "EvalTransform":
        return cls(test_random_resize=aug.test_random_resize, random_resize_max_size=aug.random_resize_max_size,
                   fixed_padding=aug.fixed_padding, input_width=input_width, input_height=input_height)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return clip_boxes(self.pipeline(clip_boxes(sample), rng or np.random.default_rng(0)))


def boxes_to_cxcywh_normalised(boxes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``[N, 4]`` xyxy pixels -> ``[N, 4]`` cxcywh in [0, 1] of ``size`` (h, w)."""
    h, w = size
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    cxcy = (b[:, :2] + b[:, 2:]) / 2
    wh = b[:, 2:] - b[:, :2]
    return torch.cat([cxcy, wh], dim=1) / torch.tensor([w, h, w, h], dtype=torch.float32)
