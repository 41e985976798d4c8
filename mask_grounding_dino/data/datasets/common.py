"""What every dataset does per sample: random generators, transforms, token maps -> Target."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import DataError
from ...text import TextProcessor
from ..batch import Target
from ..captions import CaptionSample
from ..masks import decode_mask
from ..positive_map import build_token_maps
from ..records import MaskAnn
from ..sources import ImageSource
from ..transforms import Normalize, Sample, boxes_to_cxcywh_normalised

log = logging.getLogger(__name__)

#: A transform pipeline: TrainTransform / EvalTransform (or any Sample -> Sample callable).
Pipeline = Callable[[Sample, np.random.Generator], Sample]


def source_keys(prefix: str, source, names=("image_dir", "json_file", "label_map")) -> dict[str, str]:
    """``{location: spec key}`` of a data-source entry (for :func:`..fileio.spec_keys`), e.g.
    ``{"s3://b/a.json": "dataset.val_data_sources.json_file"}``."""
    out = {}
    for name in names:
        value = getattr(source, name, None)
        if isinstance(value, str) and value:
            out.setdefault(value, f"{prefix}.{name}")
    return out


def sample_generators(seed: int | None = None) -> tuple[random.Random, np.random.Generator]:
    """Per-sample generators. Without ``seed``, one is drawn from numpy's global generator, which
    the loader's worker init (or ``engine.sampling.SeededDataset``) seeds per worker / sample."""
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    return random.Random(seed), np.random.default_rng(seed)


@dataclass
class SampleMeta:
    """Identity of a sample, copied into its Target."""

    image_id: int | str | None
    orig_size: tuple[int, int]
    file_name: str = ""
    expression_id: int | str | None = None
    grounding: bool = False      # a VG sample: may become ``empty`` when augmentation drops its targets
    empty: bool = False          # annotated as a no-target sample


def read_image(source: ImageSource, file_name: str, height: int, width: int, where: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB, checked against the annotated size (masks are decoded at it)."""
    image = source.read_array(file_name)
    if image.shape[:2] != (height, width):
        raise DataError(f"{where}: image '{file_name}' is {image.shape[0]}x{image.shape[1]} (HxW) but the "
                        f"annotation says {height}x{width}; fix height/width in the annotation file")
    return np.ascontiguousarray(image)


def decode_masks(anns: list[MaskAnn | None], height: int, width: int, where: str) -> np.ndarray | None:
    """``[N, H, W]`` bool, or None when any instance has no mask (the sample then trains
    without masks rather than against a fake empty one)."""
    if any(a is None for a in anns):
        return None
    if not anns:
        return np.zeros((0, height, width), bool)
    return np.stack([decode_mask(a, height, width, f"{where}: instance {i} mask") for i, a in enumerate(anns)])


class TargetBuilder:
    """Runs the transforms on a :class:`Sample` and builds the ``(image, Target)`` item.

    Args:
        text_processor: gives the token offsets (the same tokenisation the collator uses).
        transform: the geometric pipeline; normalize: pixels -> normalised tensor.
    """

    def __init__(self, *, text_processor: TextProcessor, transform: Pipeline, normalize: Normalize):
        self.text_processor = text_processor
        self.transform = transform
        self.normalize = normalize
        self._warned_truncation = False

    @property
    def max_text_len(self) -> int:
        return self.text_processor.max_text_len

    def __call__(self, sample: Sample, meta: SampleMeta, rng: np.random.Generator) -> tuple[torch.Tensor, Target]:
        had_targets = len(sample.boxes) > 0
        sample = self.transform(sample, rng)
        caption: CaptionSample = sample.caption
        maps = build_token_maps(caption, self.text_processor.offsets(caption.caption), self.max_text_len)
        if maps.dropped and not self._warned_truncation:
            self._warned_truncation = True
            log.warning("caption of %d tokens is longer than max_text_len=%d: phrases %s get no token and are "
                        "not learned (e.g. '%s'); lower dataset.max_labels or raise model.max_text_len",
                        self.text_processor.num_tokens(caption.caption), self.max_text_len,
                        [caption.phrases[i] for i in maps.dropped][:5], caption.caption[:80])
        n = len(sample.boxes)
        empty = meta.empty or (meta.grounding and had_targets and n == 0)
        target = Target(
            boxes=boxes_to_cxcywh_normalised(sample.boxes, sample.size),
            labels=torch.as_tensor(caption.labels, dtype=torch.long).reshape(n),
            positive_map=maps.positive_map,
            masks=None if sample.masks is None else torch.from_numpy(np.ascontiguousarray(sample.masks)),
            phrases=list(caption.phrases),
            phrase_map=maps.phrase_map,
            caption=caption.caption,
            empty=bool(empty),
            image_id=meta.image_id,
            size=sample.size,
            orig_size=meta.orig_size,
            class_ids=torch.as_tensor(caption.class_ids or [-1] * n, dtype=torch.long).reshape(n),
            file_name=meta.file_name,
            expression_id=meta.expression_id,
        )
        return self.normalize(sample), target
