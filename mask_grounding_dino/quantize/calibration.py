"""Calibration batches: images AND their captions, through the evaluation pre-processing.

Static quantisation measures the range of every quantised layer's inputs on sample data. In
this model the text branch, the image-text fusion layers and the decoder's text
cross-attention only see real activations when a real caption goes in with the image, so each
calibration image is fed with its own caption: for ODVG detection records its categories
(topped up with other class names of the label map up to ``dataset.max_labels``, as in
training), for grounding records its phrases or referring expression.

Images go through the evaluation resize (``dataset.augmentation.test_random_resize`` /
``random_resize_max_size``, or an exact ``input_size`` for fixed-size ONNX graphs) and the
spec's normalisation: the pre-processing ``evaluate`` and ``inference`` use.
Source: ``dataset.quant_calibration_data_sources`` (``image_dir``, ``json_file``,
``label_map``); the first ``quantize.num_calibration_images`` records are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..data.collate import pad_images
from ..data.transforms import EvalTransform, Normalize
from ..text import TextInputs, TextProcessor
from .errors import QuantizeError

KEY = "dataset.quant_calibration_data_sources"


@dataclass
class CalibrationBatch:
    """One batch: ``images [B,3,H,W]`` normalised, ``pixel_mask [B,H,W]`` (True = padding) or None,
    ``text`` the tokenised captions, ``captions`` their strings."""

    images: torch.Tensor
    pixel_mask: torch.Tensor | None
    text: TextInputs
    captions: list[str]

    def model_inputs(self) -> tuple:
        """Positional arguments of ``MaskGroundingDINO.forward``."""
        return (self.images, *self.text.as_tuple(), self.pixel_mask)

    def onnx_feed(self, text_len: int | None, text_processor: TextProcessor) -> dict[str, np.ndarray]:
        """The six ONNX inputs, the text padded to the graph's ``text_len`` (None: a dynamic text axis,
        padded to the longest caption)."""
        from ..export.io_names import INPUT_NAMES

        text = text_processor(self.captions, pad_to=text_len)
        arrays = [self.images.numpy(), *(t.numpy() for t in text.as_tuple())]
        return dict(zip(INPUT_NAMES, arrays))


def require_source(cfg, why: str) -> None:
    """One line when static quantisation has no calibration data."""
    source = cfg.dataset.quant_calibration_data_sources
    missing = [k for k in ("image_dir", "json_file") if not getattr(source, k, "")]
    if missing:
        raise QuantizeError(f"{KEY}.{missing[0]}: required for {why}; give the calibration images (image_dir) and "
                            "their ODVG annotations (json_file, plus label_map for detection records): each image "
                            "is calibrated with its own caption")


class CalibrationData:
    """The calibration set of a spec, re-iterable.

    Args:
        cfg: the experiment spec (dataset section, ``model.max_text_len``, ``quantize``).
        text_processor: the model's tokenizer.
        input_size: (H, W) exact resize for fixed-size graphs; None = the evaluation resize.
        size_divisibility: batch padding multiple (32 for PyTorch, 1 for ONNX graphs).
        limit: records used (default ``quantize.num_calibration_images``).
    """

    def __init__(self, cfg, text_processor: TextProcessor, *, input_size: tuple[int, int] | None = None,
                 size_divisibility: int = 32, limit: int | None = None):
        from ..data.datasets.odvg_train import OdvgDataset, TrainSource

        require_source(cfg, "static quantisation (calibration)")
        source, aug = cfg.dataset.quant_calibration_data_sources, cfg.dataset.augmentation
        height, width = input_size if input_size is not None else (None, None)
        transform = EvalTransform(test_random_resize=aug.test_random_resize,
                                  random_resize_max_size=aug.random_resize_max_size,
                                  fixed_padding=aug.fixed_padding and input_size is None,
                                  input_width=width, input_height=height)
        self.dataset = OdvgDataset(sources=[TrainSource(image_dir=source.image_dir, json_file=source.json_file,
                                                        label_map=source.label_map or None)],
                                   text_processor=text_processor, transform=transform,
                                   normalize=Normalize.from_config(aug), max_labels=cfg.dataset.max_labels,
                                   has_mask=False, serialized=False)
        self.text_processor = text_processor
        self.batch_size = max(1, int(cfg.dataset.batch_size))
        self.size_divisibility = int(size_divisibility)
        count = int(limit if limit is not None else cfg.quantize.num_calibration_images)
        self.count = min(len(self.dataset), max(1, count))

    def __len__(self) -> int:
        """Number of batches."""
        return -(-self.count // self.batch_size)

    def __iter__(self) -> Iterator[CalibrationBatch]:
        for start in range(0, self.count, self.batch_size):
            # Seeded per record: the negatives sampled into a caption are the same every pass.
            items = [self.dataset.get(i, seed=i) for i in range(start, min(start + self.batch_size, self.count))]
            images, pixel_mask = pad_images([img for img, _ in items], [t.size for _, t in items],
                                            self.size_divisibility)
            captions = [t.caption for _, t in items]
            yield CalibrationBatch(images, pixel_mask if bool(pixel_mask.any()) else None,
                                   self.text_processor(captions), captions)

    def first_size(self) -> tuple[int, int]:
        """(H, W) of the first calibration image after the evaluation resize."""
        _, target = self.dataset.get(0, seed=0)
        return int(target.size[0]), int(target.size[1])


@torch.inference_mode()
def run_calibration(model: torch.nn.Module, data: CalibrationData) -> int:
    """Forward every calibration batch through ``model`` (eval mode); returns the number of images."""
    model.eval()
    seen = 0
    for batch in data:
        model(*batch.model_inputs())
        seen += int(batch.images.shape[0])
    return seen
