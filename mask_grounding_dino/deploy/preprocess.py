"""Images from users (paths, PIL images, numpy arrays) -> an :class:`ImageBatch`.

The same steps as the evaluation / inference data pipeline: EXIF-oriented RGB, then
TAO's evaluation resize (``EvalTransform``: exactly ``input_width`` x ``input_height``
when set, else short side ``test_random_resize`` capped at ``random_resize_max_size``,
with fixed padding), normalisation with the spec's mean/std, and zero padding of the
batch to a multiple of 32 (``data.collate.pad_images``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data import fileio
from ..data.collate import pad_images
from ..data.transforms import EvalTransform, Normalize, Sample, short_side_size
from ..errors import DataError, UserError
from .detector import ImageBatch

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


def load_rgb(image: ImageInput, where: str = "image") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB from a file path, a PIL image or an array.

    Arrays: ``[H, W, 3]`` RGB or ``[H, W]`` grey, uint8 (or float in [0, 1]).
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            # A missing file or an unreachable URL raises DataError naming ``where`` and the path.
            with fileio.open_binary(path, key=where) as handle, Image.open(handle) as img:
                return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{where}: cannot read image '{fileio.redact(path)}' ({exc.__class__.__name__})") from None
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise UserError(f"{where}: an image array must be [H, W, 3] RGB or [H, W], got shape {image.shape}")
        if np.issubdtype(arr.dtype, np.floating):
            if arr.size and float(np.nanmax(arr)) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(arr, 0, 255).round().astype(np.uint8)
        elif arr.dtype != np.uint8:
            raise UserError(f"{where}: image arrays must be uint8 (or float in [0, 1]), got {arr.dtype}")
        return np.ascontiguousarray(arr)
    raise UserError(f"{where}: expected a file path, a PIL image or a numpy array, got {type(image).__name__}")


class ImagePreprocessor:
    """RGB arrays -> :class:`ImageBatch`.

    Args:
        input_size: (height, width) to resize to exactly (aspect not kept), or None for the
            aspect-preserving resize.
        test_random_resize, random_resize_max_size, fixed_padding: the aspect-preserving
            resize (TAO's evaluation keys).
        mean, std: normalisation.
        size_divisibility: batch padding multiple (1 for graphs without a padding mask).
    """

    def __init__(self, *, input_size: tuple[int, int] | None = None, test_random_resize: int = 800,
                 random_resize_max_size: int = 1333, fixed_padding: bool = True,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 size_divisibility: int = 32):
        height, width = input_size if input_size is not None else (None, None)
        self.input_size = input_size
        self._short, self._max = int(test_random_resize), int(random_resize_max_size)
        self.transform = EvalTransform(test_random_resize=test_random_resize,
                                       random_resize_max_size=random_resize_max_size, fixed_padding=fixed_padding,
                                       input_width=width, input_height=height)
        self.normalize = Normalize(mean=mean, std=std)
        self.size_divisibility = int(size_divisibility)

    @classmethod
    def from_config(cls, augmentation, input_size: tuple[int, int] | None = None, *,
                    allow_padding: bool = True) -> "ImagePreprocessor":
        """From ``dataset.augmentation``. ``allow_padding`` False (graphs without a padding mask):
        no fixed padding and no rounding of the batch size."""
        return cls(input_size=input_size, test_random_resize=augmentation.test_random_resize,
                   random_resize_max_size=augmentation.random_resize_max_size,
                   fixed_padding=augmentation.fixed_padding and allow_padding, mean=augmentation.input_mean,
                   std=augmentation.input_std, size_divisibility=32 if allow_padding else 1)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) an image of ``height`` x ``width`` has after the resize (before padding)."""
        if self.input_size is not None:
            return int(self.input_size[0]), int(self.input_size[1])
        return short_side_size(int(height), int(width), self._short, self._max)

    def __call__(self, images: Sequence[np.ndarray]) -> ImageBatch:
        """``[H_i, W_i, 3]`` uint8 RGB arrays -> one padded batch."""
        tensors, sizes, origs = [], [], []
        for image in images:
            sample = self.transform(Sample(image=image, boxes=np.zeros((0, 4), np.float32)))
            tensors.append(self.normalize(sample))
            sizes.append(sample.size)
            origs.append((int(image.shape[0]), int(image.shape[1])))
        batch, pixel_mask = pad_images(tensors, sizes, self.size_divisibility)
        return ImageBatch(batch, pixel_mask if bool(pixel_mask.any()) else None, sizes, origs)
