"""Inference inputs (``dataset.infer_data_sources``): images and prompts, no annotations.

* OD: every image of ``image_dir`` (one or several folders / archives / URLs) with one prompt
  made of ``captions`` (class names, ``"a . b"`` or a label map path), joined TAO's way.
* VG: the lines of ``inference.jsonl`` (``image_path``, ``expression``) from ``json_file``
  (TAO-Deploy reads the same file from ``captions``; both are accepted).

Targets carry no instances; ``phrases``/``phrase_map`` give the post-processing its labels,
``file_name`` the image's path relative to its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import fileio
from ...errors import DataError
from ...text import TextProcessor
from ..batch import Target
from ..captions import CaptionSample, build_eval_caption, build_expression_caption
from ..inference_inputs import parse_captions, read_inference_jsonl
from ..sources import ImageSource, open_image_source
from ..transforms import EvalTransform, Normalize, Sample
from .common import Pipeline, SampleMeta, TargetBuilder
from .store import RecordStore


@dataclass(frozen=True)
class InferenceEntry:
    """One image to run: which source, its relative path, and its prompt (None: the shared one)."""

    source: int
    path: str
    expression: str | None = None


class InferenceDataset(Dataset):
    """Images + prompts -> ``(image [3, h, w], Target)`` without instances.

    Args:
        image_dirs: folders / archives / URLs (or opened sources).
        text_processor: tokenisation used for the phrase maps.
        captions: OD class names (one prompt for every image); or
        entries: explicit (source, path, expression) items (VG).
    """

    def __init__(self, *, image_dirs: list[str | ImageSource], text_processor: TextProcessor,
                 captions: list[str] | None = None, entries: list[InferenceEntry] | None = None,
                 transform: Pipeline | None = None, normalize: Normalize | None = None,
                 cache_dir: str | None = None):
        if not image_dirs:
            raise DataError("dataset.infer_data_sources.image_dir is empty: give an image folder, an "
                            "images.tar.gz or a URL")
        self.sources = [d if isinstance(d, ImageSource) else open_image_source(d, cache_dir) for d in image_dirs]
        if entries is None:
            if not captions:
                raise DataError("dataset.infer_data_sources.captions is empty: OD inference needs the class "
                                "names to prompt with (a list, 'a . b . c', or a label map path)")
            entries = [InferenceEntry(i, path) for i, src in enumerate(self.sources) for path in src.list_images()]
            if not entries:
                raise DataError("no images found in " + ", ".join(s.describe() for s in self.sources))
        self.od_caption: CaptionSample | None = (
            build_eval_caption(dict(enumerate(captions))) if captions else None)
        self.entries = RecordStore(entries, serialized=True)
        self.builder = TargetBuilder(text_processor=text_processor, transform=transform or EvalTransform(),
                                     normalize=normalize or Normalize())

    @classmethod
    def from_config(cls, cfg, text_processor: TextProcessor | None = None,
                    cache_dir: str | None = None) -> "InferenceDataset":
        """From ``cfg.dataset.infer_data_sources`` (+ ``inference.input_width/height``)."""
        ds, src = cfg.dataset, cfg.dataset.infer_data_sources
        tp = text_processor or TextProcessor(cfg.model.text_encoder_type, cfg.model.max_text_len)
        common = dict(text_processor=tp, cache_dir=cache_dir,
                      transform=EvalTransform.from_config(ds.augmentation, cfg.inference.input_width,
                                                          cfg.inference.input_height),
                      normalize=Normalize.from_config(ds.augmentation))
        dirs = src.image_dirs if hasattr(src, "image_dirs") else [src.image_dir]
        with fileio.spec_keys(_infer_keys(src, dirs)):
            return cls._from_source(src, dirs, common)

    @classmethod
    def _from_source(cls, src, dirs: list[str], common: dict) -> "InferenceDataset":
        if (src.data_type or "OD").upper() == "VG":
            jsonl = src.json_file or _jsonl_from_captions(src.captions)
            if not jsonl:
                raise DataError("dataset.infer_data_sources: VG inference needs json_file (an inference.jsonl "
                                "with image_path and expression per line)")
            if len(dirs) != 1:
                raise DataError(f"dataset.infer_data_sources.image_dir: VG inference takes one image source "
                                f"(paths in {jsonl} are relative to it), got {len(dirs)}")
            items = read_inference_jsonl(jsonl)
            return cls(image_dirs=dirs, entries=[InferenceEntry(0, it.image_path, it.expression) for it in items],
                       **common)
        if src.captions is None:
            raise DataError("dataset.infer_data_sources.captions is missing: OD inference needs the class names")
        return cls(image_dirs=dirs, captions=parse_captions(src.captions, "dataset.infer_data_sources.captions"),
                   **common)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        entry: InferenceEntry = self.entries[index]
        image = self.sources[entry.source].read_array(entry.path)
        if entry.expression is not None:
            caption = build_expression_caption(entry.expression, [])
        else:
            caption = self.od_caption
        sample = Sample(image=np.ascontiguousarray(image), boxes=np.zeros((0, 4), np.float32), masks=None,
                        caption=caption)
        meta = SampleMeta(image_id=index, orig_size=(int(image.shape[0]), int(image.shape[1])),
                          file_name=entry.path, grounding=entry.expression is not None)
        return self.builder(sample, meta, np.random.default_rng(index))


def _infer_keys(src, dirs: list[str]) -> dict[str, str]:
    """``{location: spec key}`` of ``dataset.infer_data_sources`` (folders, jsonl, label map)."""
    prefix = "dataset.infer_data_sources"
    keys = {d: f"{prefix}.image_dir" + (f"[{i}]" if len(dirs) > 1 else "") for i, d in enumerate(dirs)
            if isinstance(d, str)}
    if isinstance(src.json_file, str) and src.json_file:
        keys.setdefault(src.json_file, f"{prefix}.json_file")
    captions = src.captions if isinstance(src.captions, str) else (
        src.captions[0] if isinstance(src.captions, (list, tuple)) and len(src.captions) == 1 else None)
    if isinstance(captions, str):
        keys.setdefault(captions, f"{prefix}.captions")
    return keys


def _jsonl_from_captions(captions) -> str | None:
    """TAO-Deploy passes the VG jsonl path in ``captions``."""
    if isinstance(captions, str) and captions.lower().endswith(".jsonl"):
        return captions
    if isinstance(captions, (list, tuple)) and len(captions) == 1 and str(captions[0]).lower().endswith(".jsonl"):
        return str(captions[0])
    return None
