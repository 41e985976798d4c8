"""OD validation / test data from a COCO json (``data_type: OD``).

The caption is every category name in id order (TAO's evaluation prompt), so phrase index
== position of the category id; ``class_ids`` keep the COCO category ids and ``image_id``
the COCO image id, for the metrics. Crowd annotations (``iscrowd: 1``) are left out of the
targets (they are not instances to match; COCOeval treats them as ignore regions itself).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import fileio
from ...errors import DataError
from ...text import TextProcessor
from ..batch import Target
from ..captions import build_eval_caption
from ..coco import read_coco
from ..records import CocoDataset
from ..sources import ImageSource, open_image_source
from ..transforms import EvalTransform, Normalize, Sample
from .common import Pipeline, SampleMeta, TargetBuilder, decode_masks, read_image, sample_generators, source_keys
from .store import RecordStore


class CocoEvalDataset(Dataset):
    """COCO json + image source -> ``(image [3, h, w], Target)`` with the all-category caption.

    Args:
        json_file: COCO annotations (category ids contiguous from 0, TAO's rule).
        image_dir: folder, images.tar.gz or URL (or an opened :class:`ImageSource`).
        text_processor: tokenisation used for the positive maps.
        transform: default :class:`EvalTransform` with TAO defaults.
        has_mask: decode ``segmentation`` into masks.
    """

    def __init__(self, *, json_file: str, image_dir: str | ImageSource, text_processor: TextProcessor,
                 transform: Pipeline | None = None, normalize: Normalize | None = None,
                 has_mask: bool = True, serialized: bool = True, cache_dir: str | None = None):
        coco: CocoDataset = read_coco(json_file)
        if not coco.categories:
            raise DataError(f"{json_file}: no categories; the evaluation prompt is made of category names")
        self.json_file = json_file
        self.categories = dict(coco.categories)          # id -> name, ids ascending
        self.caption = build_eval_caption(self.categories).caption
        self.has_mask = bool(has_mask)
        self.images = image_dir if isinstance(image_dir, ImageSource) else open_image_source(image_dir, cache_dir)
        self.builder = TargetBuilder(text_processor=text_processor, transform=transform or EvalTransform(),
                                     normalize=normalize or Normalize())
        by_image = coco.annotations_by_image()
        rows = []
        for img in coco.images:
            anns = [a for a in by_image.get(img.id, []) if not a.iscrowd]
            rows.append((img, [(a.bbox, a.category_id, a.segmentation if self.has_mask else None) for a in anns]))
        self.records = RecordStore(rows, serialized=serialized)

    @classmethod
    def from_config(cls, cfg, split: str = "val", text_processor: TextProcessor | None = None,
                    cache_dir: str | None = None) -> "CocoEvalDataset":
        """``split``: "val" (``val_data_sources``) or "test" (``test_data_sources``, with
        ``evaluate.input_width/height`` when both are set)."""
        ds = cfg.dataset
        src = ds.val_data_sources if split == "val" else ds.test_data_sources
        size = (None, None)
        if split == "test":
            size = (cfg.evaluate.input_width, cfg.evaluate.input_height)
        tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
        with fileio.spec_keys(source_keys(f"dataset.{split}_data_sources", src)):
            return cls(json_file=src.json_file, image_dir=src.image_dir, text_processor=tp,
                       transform=EvalTransform.from_config(ds.augmentation, *size),
                       normalize=Normalize.from_config(ds.augmentation), has_mask=ds.has_mask,
                       serialized=ds.dataset_type == "serialized", cache_dir=cache_dir)

    @property
    def category_names(self) -> list[str]:
        """Names in id order (== the caption's phrases)."""
        return list(self.categories.values())

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.get(index)

    def get(self, index: int, seed: int | None = None) -> tuple[torch.Tensor, Target]:
        img, anns = self.records[index]
        _, rng = sample_generators(seed if seed is not None else index)
        where = f"{self.json_file}: image {img.id}"
        image = read_image(self.images, img.file_name, img.height, img.width, where)
        boxes = np.asarray([[x, y, x + w, y + h] for (x, y, w, h), _, _ in anns], np.float32).reshape(-1, 4)
        class_ids = [cat for _, cat, _ in anns]
        masks = decode_masks([seg for _, _, seg in anns], img.height, img.width, where) if self.has_mask else None
        caption = build_eval_caption(self.categories, class_ids)
        sample = Sample(image=image, boxes=boxes, masks=masks, caption=caption)
        meta = SampleMeta(image_id=img.id, orig_size=(img.height, img.width), file_name=img.file_name)
        return self.builder(sample, meta, rng)
