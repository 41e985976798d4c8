"""Checks shared by every format: prompt lengths (batched tokenisation), image existence and
a decoded sample, boxes and masks."""

from __future__ import annotations

import random

from ....errors import DataError
from ...box_checks import box_has_area, degenerate_box_message, format_box
from ...masks import check_mask
from ...sources import ImageSource
from .report import Report

#: Box coordinates may overshoot the image by this much before being reported (converters
#: round to 2 decimals and some tools use x2 = x + w inclusive; the loaders clamp anyway).
BOX_TOLERANCE_PX = 1.0


class TextChecker:
    """Counts tokens of captions / prompts in batches and reports those over ``max_text_len``."""

    BATCH = 512

    def __init__(self, text_encoder_type: str, max_text_len: int, report: Report):
        from ....text import TextProcessor

        self.processor = TextProcessor(text_encoder_type, max_text_len)
        self.max_text_len = int(max_text_len)
        self.report = report
        self._pending: list[tuple[str, str, str]] = []
        self._known: dict[str, int] = {}

    def add(self, text: str, where: str, what: str = "caption") -> None:
        if text in self._known:
            self._judge(self._known[text], where, what)
            return
        self._pending.append((text, where, what))
        if len(self._pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        texts = list(dict.fromkeys(t for t, _, _ in self._pending))
        encoded = self.processor.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        if len(self._known) > 200_000:  # bounded memory on huge, mostly unique caption sets
            self._known.clear()
        self._known.update(zip(texts, (len(ids) for ids in encoded["input_ids"])))
        for text, where, what in self._pending:
            self._judge(self._known[text], where, what)
        self._pending.clear()

    def _judge(self, count: int, where: str, what: str) -> None:
        if count > self.max_text_len:
            self.report.add("prompt_too_long", where, f"{what} has {count} tokens (with [CLS]/[SEP]); "
                                                      f"max_text_len is {self.max_text_len}")


class ImageChecker:
    """Existence of every referenced image (no decoding) and a decoded sample (size check)."""

    def __init__(self, source: ImageSource, report: Report, sample: int, decode_all: bool, seed: int = 0):
        self.source, self.report = source, report
        self.sample, self.decode_all = sample, decode_all
        self._rng = random.Random(seed)
        self._status: dict[str, bool] = {}
        self._seen = 0
        self._reservoir: list[tuple[str, str, int, int]] = []

    def check(self, name: str, where: str, height: int, width: int) -> None:
        known = self._status.get(name)
        if known is None:
            known = self._status[name] = self.source.exists(name)
            if not known:
                self.report.add("missing_image", where, f"'{name}' not found in {self.source.describe()}")
            elif self.decode_all:
                self._decode(name, where, height, width)
            else:
                self._offer((name, where, height, width))

    def _offer(self, item: tuple[str, str, int, int]) -> None:
        """Reservoir sampling: every existing image has the same chance to be decoded."""
        self._seen += 1
        if len(self._reservoir) < self.sample:
            self._reservoir.append(item)
        else:
            slot = self._rng.randrange(self._seen)
            if slot < self.sample:
                self._reservoir[slot] = item

    def finish(self) -> None:
        for item in self._reservoir:
            self._decode(*item)
        self._reservoir.clear()

    def _decode(self, name: str, where: str, height: int, width: int) -> None:
        try:
            img = self.source.read(name)
        except DataError as exc:
            self.report.add("unreadable_image", where, str(exc))
            return
        if (img.height, img.width) != (height, width):
            self.report.add("image_size_mismatch", where, f"'{name}' is {img.height}x{img.width} (HxW) but the "
                                                          f"annotation says {height}x{width}")


def check_box_xyxy(report: Report, box, height: int, width: int, where: str) -> None:
    x1, y1, x2, y2 = box
    tol = BOX_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        report.add("box_outside_image", where, f"box {format_box(box)} outside the {width}x{height} (WxH) image")
    if not box_has_area(box, height, width):
        report.add("degenerate_box", where, degenerate_box_message(box))


def check_instance_mask(report: Report, mask, height: int, width: int, where: str, has_mask: bool) -> None:
    if mask is None:
        if has_mask:
            report.add("missing_mask", where, "no 'mask' (set dataset.has_mask false, or pass --no-mask, "
                                              "for box-only data)")
        return
    for issue in check_mask(mask, height, width):
        report.add(issue.kind, where, issue.message)

