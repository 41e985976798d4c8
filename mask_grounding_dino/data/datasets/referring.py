"""VG validation / test data: one sample per referring expression (``data_type: VG``).

``json_file`` is an ODVG jsonl of grounding records (``expression``, ``empty``, regions), or a
COCO json whose annotations carry ``referring_expression`` and ``sent_id`` (TAO-Deploy's
alternative; a no-target sentence has an annotation with ``empty: true``). The caption is the
cleaned expression; ``empty`` and ``expression_id`` go into the Target for the metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import fileio
from ...errors import DataError
from ...text import TextProcessor
from ..batch import Target
from ..captions import build_expression_caption
from ..coco import read_coco
from ..odvg import iter_odvg
from ..records import CocoDataset, GroundingRecord, Region
from ..sources import ImageSource, open_image_source
from ..transforms import EvalTransform, Normalize, Sample
from .common import Pipeline, SampleMeta, TargetBuilder, decode_masks, read_image, sample_generators, source_keys
from .store import RecordStore


def referring_records_from_coco(coco: CocoDataset) -> list[GroundingRecord]:
    """Group a COCO json's annotations by ``sent_id`` into expression records."""
    images = {img.id: img for img in coco.images}
    groups: dict[object, list] = {}
    for i, ann in enumerate(coco.annotations):
        if "referring_expression" not in ann.extra or "sent_id" not in ann.extra:
            raise DataError(f"{coco.source}: annotations[{i}] has no 'referring_expression'/'sent_id'; a VG "
                            "COCO file needs both on every annotation (or use an ODVG grounding jsonl)")
        groups.setdefault(ann.extra["sent_id"], []).append(ann)
    out = []
    for sent_id, anns in groups.items():
        img = images[anns[0].image_id]
        text = str(anns[0].extra["referring_expression"])
        regions = [Region(bbox=(a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]),
                          phrase=text, mask=a.segmentation)
                   for a in anns if not a.extra.get("empty", False)]
        out.append(GroundingRecord(file_name=img.file_name, height=img.height, width=img.width, regions=regions,
                                   expression=text, empty=not regions, image_id=img.id,
                                   expression_id=anns[0].extra.get("ref_id", sent_id), sent_id=sent_id,
                                   source=coco.source))
    return out


class ReferringDataset(Dataset):
    """Expression records + image source -> ``(image [3, h, w], Target)``.

    Args:
        json_file: ODVG grounding jsonl, or a COCO json with ``referring_expression``/``sent_id``.
        image_dir: folder, images.tar.gz or URL (or an opened :class:`ImageSource`).
        text_processor: tokenisation used for the positive maps.
    """

    def __init__(self, *, json_file: str, image_dir: str | ImageSource, text_processor: TextProcessor,
                 transform: Pipeline | None = None, normalize: Normalize | None = None,
                 has_mask: bool = True, serialized: bool = True, cache_dir: str | None = None):
        self.json_file = json_file
        self.has_mask = bool(has_mask)
        if json_file.lower().endswith(".json"):
            records = referring_records_from_coco(read_coco(json_file))
        else:
            records = list(iter_odvg(json_file))
            for r in records:
                if not isinstance(r, GroundingRecord):
                    raise DataError(f"{r.source} line {r.line}: VG evaluation data needs grounding records "
                                    "(an expression or caption with regions), this line has 'detection'")
        if not records:
            raise DataError(f"{json_file}: no referring expressions")
        self.records = RecordStore(records, serialized=serialized)
        self.images = image_dir if isinstance(image_dir, ImageSource) else open_image_source(image_dir, cache_dir)
        self.builder = TargetBuilder(text_processor=text_processor, transform=transform or EvalTransform(),
                                     normalize=normalize or Normalize())

    @classmethod
    def from_config(cls, cfg, split: str = "val", text_processor: TextProcessor | None = None,
                    cache_dir: str | None = None) -> "ReferringDataset":
        ds = cfg.dataset
        src = ds.val_data_sources if split == "val" else ds.test_data_sources
        size = (cfg.evaluate.input_width, cfg.evaluate.input_height) if split == "test" else (None, None)
        tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
        with fileio.spec_keys(source_keys(f"dataset.{split}_data_sources", src)):
            return cls(json_file=src.json_file, image_dir=src.image_dir, text_processor=tp,
                       transform=EvalTransform.from_config(ds.augmentation, *size),
                       normalize=Normalize.from_config(ds.augmentation), has_mask=ds.has_mask,
                       serialized=ds.dataset_type == "serialized", cache_dir=cache_dir)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.get(index)

    def get(self, index: int, seed: int | None = None) -> tuple[torch.Tensor, Target]:
        record: GroundingRecord = self.records[index]
        _, rng = sample_generators(seed if seed is not None else index)
        where = f"{record.source} line {record.line}"
        image = read_image(self.images, record.file_name, record.height, record.width, where)
        regions = record.regions
        caption = build_expression_caption(record.text, [r.phrase for r in regions],
                                           [r.tokens_positive for r in regions])
        boxes = np.asarray([r.bbox for r in regions], np.float32).reshape(-1, 4)
        masks = decode_masks([r.mask for r in regions], record.height, record.width, where) if self.has_mask else None
        sample = Sample(image=image, boxes=boxes, masks=masks, caption=caption)
        expression_id = record.expression_id if record.expression_id is not None else record.sent_id
        meta = SampleMeta(image_id=record.image_id if record.image_id is not None else index,
                          orig_size=(record.height, record.width), file_name=record.file_name,
                          expression_id=expression_id if expression_id is not None else index,
                          grounding=True, empty=record.empty or not regions)
        return self.builder(sample, meta, rng)
