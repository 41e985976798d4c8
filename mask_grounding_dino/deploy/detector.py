"""Images + prompts -> :class:`Detections`, the same way for every backend and every caller.

Two kinds of prompt (TAO's ``data_type``):

* OD, a class list shared by the batch (``["person", "dog"]``): post-processed with phrase
  scores, labels index the list. A list longer than the text encoder's ``max_text_len``
  is split into chunks at phrase boundaries (``model.chunking``); the image side runs once
  per batch, the text side once per chunk, and the chunks' candidates are merged
  (labels stay indices of the full list).
* VG, one referring expression per image: token scores, the words that fired as phrase.

The evaluate / inference actions and the Python :class:`~mask_grounding_dino.api.Predictor`
all go through :class:`Detector`, with a PyTorch or an ONNX backend.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.batch import Batch
from ..model.chunking import PromptChunk, build_chunks, detect_chunked
from ..model.postprocess import PostProcessor, PromptLayout
from ..model.results import Detections
from .backend import Backend

log = logging.getLogger(__name__)

MODES = ("OD", "VG")


@dataclass(frozen=True)
class Thresholds:
    """Post-processing settings (TAO's ``inference`` defaults; ``evaluate`` uses conf 0.0)."""

    conf_threshold: float = 0.5
    nms_threshold: float = 0.2
    text_threshold: float = 0.3
    ioi_threshold: float = 0.5
    num_select: int = 300

    @classmethod
    def from_config(cls, section, model_cfg=None) -> "Thresholds":
        """From an ``evaluate`` or ``inference`` section (+ ``model.num_select``)."""
        num_select = getattr(model_cfg, "num_select", cls.num_select) if model_cfg is not None else cls.num_select
        return cls(conf_threshold=float(section.conf_threshold), nms_threshold=float(section.nms_threshold),
                   text_threshold=float(section.text_threshold), ioi_threshold=float(section.ioi_threshold),
                   num_select=int(num_select))

    def postprocessor(self, mode: str) -> PostProcessor:
        return PostProcessor(num_select=self.num_select, text_threshold=self.text_threshold,
                             conf_threshold=self.conf_threshold, nms_threshold=self.nms_threshold,
                             ioi_threshold=self.ioi_threshold, mode=mode)

    def as_dict(self) -> dict[str, float]:
        return {"conf_threshold": self.conf_threshold, "nms_threshold": self.nms_threshold,
                "text_threshold": self.text_threshold, "ioi_threshold": self.ioi_threshold,
                "num_select": self.num_select}


@dataclass
class ImageBatch:
    """Pre-processed images.

    images: [B, 3, H, W] normalised, zero padded right/bottom; pixel_mask: [B, H, W] bool
    (True = padding) or None; input_sizes: (h, w) of each resized image inside the tensor;
    orig_sizes: (H, W) of each original image.
    """

    images: Tensor
    pixel_mask: Tensor | None
    input_sizes: list[tuple[int, int]]
    orig_sizes: list[tuple[int, int]]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def from_batch(cls, batch: Batch) -> "ImageBatch":
        """The image side of a data-pipeline :class:`Batch`."""
        mask = batch.pixel_mask if bool(batch.pixel_mask.any()) else None
        return cls(batch.images, mask, [tuple(t.size) for t in batch.targets],
                   [tuple(t.orig_size) for t in batch.targets])


class Detector:
    """Runs a backend and TAO's post-processing.

    Args:
        backend: a :class:`~.backend.Backend` (PyTorch or ONNX).
        thresholds: post-processing settings.
        max_chunk_phrases: at most this many classes per chunk of a long class list
            (None: as many as fit ``max_text_len``).
    """

    def __init__(self, backend: Backend, thresholds: Thresholds = Thresholds(), *,
                 max_chunk_phrases: int | None = None):
        self.backend = backend
        self.thresholds = thresholds
        self.max_chunk_phrases = max_chunk_phrases
        self._post = {mode: thresholds.postprocessor(mode) for mode in MODES}
        self._chunks: OrderedDict[tuple[str, ...], list[PromptChunk]] = OrderedDict()
        self._layouts: OrderedDict[tuple, PromptLayout] = OrderedDict()

    @property
    def text_processor(self):
        return self.backend.text_processor

    # ------------------------------------------------------------------ prompts
    def plan(self, phrases: Sequence[str]) -> list[PromptChunk]:
        """The chunks a class list runs in (one when it fits ``max_text_len``)."""
        key = tuple(phrases)
        if key not in self._chunks:
            chunks = build_chunks(list(phrases), self.text_processor, max_phrases=self.max_chunk_phrases)
            if len(chunks) > 1:
                log.info("class list of %d names is longer than max_text_len=%d tokens: running it in %d chunks",
                         len(phrases), self.text_processor.max_text_len, len(chunks))
            self._chunks[key] = chunks
            if len(self._chunks) > 16:
                self._chunks.popitem(last=False)
        return self._chunks[key]

    def expression_layout(self, caption: str, phrases: Sequence[str] | None = None) -> PromptLayout:
        key = (caption, tuple(phrases or ()))
        if key not in self._layouts:
            self._layouts[key] = PromptLayout.from_caption(caption, self.text_processor,
                                                           phrases=list(phrases) if phrases else None)
            if len(self._layouts) > 4096:
                self._layouts.popitem(last=False)
        return self._layouts[key]

    # ------------------------------------------------------------------ detection
    def detect_classes(self, batch: ImageBatch, phrases: Sequence[str]) -> list[Detections]:
        """OD: every image of ``batch`` prompted with the class list ``phrases``."""
        chunks = self.plan(phrases)
        post = self._post["OD"]
        image = self.backend.encode_image(batch.images, batch.pixel_mask)
        if len(chunks) == 1:
            outputs = self.backend.run(image, [chunks[0].caption])
            return post(outputs, [chunks[0].layout] * len(batch), batch.orig_sizes, batch.input_sizes)
        return detect_chunked(lambda chunk: self.backend.run(image, [chunk.caption]), chunks, post,
                              batch.orig_sizes, batch.input_sizes)

    def detect_expressions(self, batch: ImageBatch, captions: Sequence[str],
                           phrases: Sequence[Sequence[str] | None] | None = None) -> list[Detections]:
        """VG: image ``i`` prompted with ``captions[i]`` (``phrases[i]``: its phrases, default: the
        runs between delimiters, i.e. the whole expression)."""
        if len(captions) != len(batch):
            raise ValueError(f"detect_expressions: {len(captions)} captions for {len(batch)} images")
        phrases = phrases if phrases is not None else [None] * len(batch)
        layouts = [self.expression_layout(c, p) for c, p in zip(captions, phrases)]
        image = self.backend.encode_image(batch.images, batch.pixel_mask)
        outputs = self.backend.run(image, list(captions))
        return self._post["VG"](outputs, layouts, batch.orig_sizes, batch.input_sizes)

    def detect_batch(self, batch: Batch, mode: str) -> list[Detections]:
        """A data-pipeline batch (evaluate / inference): OD targets share a class list (``phrases``);
        VG targets carry their caption. Images whose OD class lists differ run separately."""
        images = ImageBatch.from_batch(batch)
        targets = batch.targets
        if mode == "VG":
            return self.detect_expressions(images, [t.caption for t in targets], [t.phrases for t in targets])
        groups: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        for i, t in enumerate(targets):
            groups.setdefault(tuple(t.phrases), []).append(i)
        if len(groups) == 1:
            return self.detect_classes(images, next(iter(groups)))
        out: list[Detections | None] = [None] * len(targets)
        for phrases, rows in groups.items():
            index = torch.as_tensor(rows)
            sub = ImageBatch(images.images[index], None if images.pixel_mask is None else images.pixel_mask[index],
                             [images.input_sizes[i] for i in rows], [images.orig_sizes[i] for i in rows])
            for i, det in zip(rows, self.detect_classes(sub, phrases)):
                out[i] = det
        return out  # type: ignore[return-value]
