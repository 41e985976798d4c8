"""Training dataset over one or more ODVG sources (``dataset.train_data_sources``).

Detection records need the source's ``label_map`` (the caption is built from class names);
grounding records are used with or without one. Records are stored compactly
(:class:`~.store.RecordStore`); images and masks are read and decoded per sample.

Boxes with no area inside their image are removed while the records are read, once, and
reported in one summary line (``data/box_checks.py``: the severity ``dataset validate``
gives them); workers never meet them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import fileio
from ...errors import DataError
from ...text import TextProcessor
from ..batch import Target
from ..box_checks import DegenerateBoxes
from ..captions import build_expression_caption, build_grounding_caption, build_od_caption
from ..label_map import read_label_map
from ..odvg import iter_odvg
from ..records import DetectionRecord, LabelMap, OdvgRecord
from ..sources import ImageSource, open_image_source
from ..transforms import Normalize, Sample, TrainTransform
from .common import Pipeline, SampleMeta, TargetBuilder, decode_masks, read_image, sample_generators, source_keys
from .store import RecordStore


class TrainSource:
    """One ``{image_dir, json_file, label_map}`` entry, opened."""

    def __init__(self, *, image_dir: str, json_file: str, label_map: str | None = None,
                 cache_dir: str | None = None):
        self.image_dir, self.json_file, self.label_map_path = image_dir, json_file, label_map or None
        self.label_map: LabelMap | None = read_label_map(label_map) if label_map else None
        self._image_dir_cache = cache_dir
        self._images: ImageSource | None = None

    @property
    def images(self) -> ImageSource:
        # Opened lazily (an images.tar.gz is extracted on first use).
        if self._images is None:
            self._images = open_image_source(self.image_dir, self._image_dir_cache)
        return self._images


class OdvgDataset(Dataset):
    """ODVG training data -> ``(image [3, h, w], Target)``.

    Args:
        sources: opened :class:`TrainSource` entries (their records are concatenated).
        text_processor: tokenisation used for the positive maps (same as the collator's).
        transform: geometric pipeline (default: TAO's training pipeline with TAO defaults).
        normalize: pixel normalisation (default ImageNet mean/std).
        max_labels: class names per detection caption (positives + sampled negatives).
        has_mask: decode masks (``dataset.has_mask``).
        serialized: store records in byte buffers (``dataset_type: serialized``).
    """

    def __init__(self, *, sources: list[TrainSource], text_processor: TextProcessor,
                 transform: Pipeline | None = None, normalize: Normalize | None = None,
                 max_labels: int = 50, has_mask: bool = True, serialized: bool = True):
        if not sources:
            raise DataError("dataset.train_data_sources is empty: give at least one "
                            "{image_dir, json_file, label_map} entry")
        self.sources = sources
        self.max_labels = int(max_labels)
        self.has_mask = bool(has_mask)
        self.builder = TargetBuilder(text_processor=text_processor, transform=transform or TrainTransform(),
                                     normalize=normalize or Normalize())
        self.records = RecordStore(self._iter_records(), serialized=serialized)
        for source in sources:
            _ = source.images  # open now: a missing folder fails here, an archive is extracted once

    @classmethod
    def from_config(cls, cfg, text_processor: TextProcessor | None = None,
                    cache_dir: str | None = None) -> "OdvgDataset":
        """From an ``ExperimentConfig`` (``cfg.dataset``, ``cfg.model.text_encoder_type/max_text_len``)."""
        ds = cfg.dataset
        entries = ds.used_train_data_sources() if hasattr(ds, "used_train_data_sources") else ds.train_data_sources
        keys: dict[str, str] = {}
        for i, entry in enumerate(entries):
            keys = {**source_keys(f"dataset.train_data_sources[{i}]", entry), **keys}   # the first entry wins
        tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
        with fileio.spec_keys(keys):
            sources = [TrainSource(image_dir=e.image_dir, json_file=e.json_file, label_map=e.label_map,
                                   cache_dir=cache_dir) for e in entries]
            return cls(sources=sources, text_processor=tp, transform=TrainTransform.from_config(ds.augmentation),
                       normalize=Normalize.from_config(ds.augmentation), max_labels=ds.max_labels,
                       has_mask=ds.has_mask, serialized=ds.dataset_type == "serialized")

    def _iter_records(self):
        degenerate = DegenerateBoxes()
        for index, source in enumerate(self.sources):
            read = kept = 0
            for record in iter_odvg(source.json_file):
                read += 1
                self._check(record, source)
                if not degenerate.filter(record):
                    continue
                if not self.has_mask:
                    _strip_masks(record)
                yield index, record
                kept += 1
            if read == 0:
                raise DataError(f"{source.json_file}: no records (an ODVG jsonl has one JSON object per line)")
            if kept == 0:
                raise DataError(f"{source.json_file}: no record is left: every box of its {read} record(s) has no "
                                "area inside the image (see `mask_grounding_dino dataset validate`)")
        degenerate.report()

    @staticmethod
    def _check(record: OdvgRecord, source: TrainSource) -> None:
        if not isinstance(record, DetectionRecord):
            return
        where = f"{record.source} line {record.line}"
        if source.label_map is None:
            raise DataError(f"{where}: a detection record needs the source's label_map (class id -> name); "
                            f"add label_map: <annotations_odvg_labelmap.json> to this train_data_sources entry")
        for i, inst in enumerate(record.instances):
            if inst.label not in source.label_map:
                raise DataError(f"{where}: detection.instances[{i}].label {inst.label} is not in the label map "
                                f"{source.label_map_path} (ids {min(source.label_map)}..{max(source.label_map)})")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.get(index)

    def get(self, index: int, seed: int | None = None) -> tuple[torch.Tensor, Target]:
        """Item ``index``; ``seed`` fixes its randomness (default: from numpy's global generator)."""
        source_index, record = self.records[index]
        source = self.sources[source_index]
        py_rng, rng = sample_generators(seed)
        where = f"{record.source} line {record.line}"
        image = read_image(source.images, record.file_name, record.height, record.width, where)
        if isinstance(record, DetectionRecord):
            items = record.instances
            caption = build_od_caption([i.label for i in items], source.label_map, self.max_labels, py_rng)
            swap, grounding, empty = False, False, False
        else:
            items = record.regions
            phrases = [r.phrase for r in items]
            if record.expression is not None:
                caption = build_expression_caption(record.expression, phrases, [r.tokens_positive for r in items])
            else:
                caption = build_grounding_caption(phrases, py_rng)
            swap, grounding, empty = True, True, record.empty
        boxes = np.asarray([i.bbox for i in items], np.float32).reshape(-1, 4)
        masks = decode_masks([i.mask for i in items], record.height, record.width, where) if self.has_mask else None
        sample = Sample(image=image, boxes=boxes, masks=masks, caption=caption, swap_words=swap)
        meta = SampleMeta(image_id=record.image_id if record.image_id is not None else index,
                          orig_size=(record.height, record.width), file_name=record.file_name,
                          expression_id=getattr(record, "expression_id", None) or getattr(record, "sent_id", None),
                          grounding=grounding, empty=empty)
        return self.builder(sample, meta, rng)


def _strip_masks(record: OdvgRecord) -> None:
    """Drop stored masks when they are not used (less memory per record)."""
    items = record.instances if isinstance(record, DetectionRecord) else record.regions
    for item in items:
        item.mask = None

