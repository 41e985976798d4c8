"""Torch datasets: ODVG training, COCO (OD) and referring (VG) evaluation, inference inputs.

Every dataset yields ``(image [3, h, w] float, Target)``; :class:`~..collate.Collator` makes
the :class:`~..batch.Batch`.
"""

from .coco_eval import CocoEvalDataset
from .common import SampleMeta, TargetBuilder, sample_generators
from .inference import InferenceDataset, InferenceEntry
from .odvg_train import OdvgDataset, TrainSource
from .referring import ReferringDataset, referring_records_from_coco
from .store import RecordStore

__all__ = ["CocoEvalDataset", "InferenceDataset", "InferenceEntry", "OdvgDataset", "RecordStore",
           "ReferringDataset", "SampleMeta", "TargetBuilder", "TrainSource", "referring_records_from_coco",
           "sample_generators"]
