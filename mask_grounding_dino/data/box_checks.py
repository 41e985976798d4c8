"""Boxes with no area inside their image: one rule, one wording and one severity for
``dataset validate`` and for training.

A box is degenerate when, clamped to the image, its width or height is zero or negative
(inverted corners such as ``[30, 30, 5, 5]``, zero size, or entirely outside the image).
``dataset validate`` reports each as a ``degenerate_box`` of severity
:data:`DEGENERATE_BOX_SEVERITY`; the training dataset applies the same severity when it is
built: a warning skips the box (and a record left with no box at all) and reports it, an
error refuses the data with the validator's wording.

Boxes that become degenerate only after a random crop are ordinary augmentation and are
handled by ``data/transforms.py`` without a report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DataError
from .records import DetectionRecord, OdvgRecord

log = logging.getLogger(__name__)

#: "warning": skipped with a report; "error": the data is refused. Also the validator's severity.
DEGENERATE_BOX_SEVERITY = "warning"
#: How many skipped boxes the summary line names (every one goes to the log).
SUMMARY_EXAMPLES = 1


def box_has_area(box: Sequence[float], height: int, width: int) -> bool:
    """True when the xyxy pixel ``box`` keeps some area once clamped to the ``width`` x ``height`` image."""
    x1, y1, x2, y2 = box
    cx1, cx2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    cy1, cy2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return cx2 > cx1 and cy2 > cy1


def format_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def degenerate_box_message(box: Sequence[float]) -> str:
    """What is wrong with a degenerate box (the validator's and the training report's wording)."""
    return f"box {format_box(box)} has no area inside the image"


@dataclass
class DegenerateBoxes:
    """Removes degenerate boxes from training records and reports them once (:meth:`report`).

    ``severity``: :data:`DEGENERATE_BOX_SEVERITY` unless given.
    """

    severity: str = field(default_factory=lambda: DEGENERATE_BOX_SEVERITY)
    boxes: int = 0
    records_skipped: int = 0
    per_file: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def filter(self, record: OdvgRecord) -> bool:
        """Drop ``record``'s degenerate boxes (with their masks and phrases); False when the record
        had boxes and none is left: it is then skipped whole (training it would teach that its
        objects are background, or turn a referring expression into a no-target one)."""
        detection = isinstance(record, DetectionRecord)
        items = record.instances if detection else record.regions
        bad = [i for i, item in enumerate(items) if not box_has_area(item.bbox, record.height, record.width)]
        if not bad:
            return True
        kind = "instances" if detection else "regions"
        where = f"{record.source}:{record.line}"
        for i in bad:
            detail = f"{where}: {kind}[{i}]: {degenerate_box_message(items[i].bbox)}"
            if self.severity == "error":
                raise DataError(detail)
            self.boxes += 1
            self.per_file[record.source] = self.per_file.get(record.source, 0) + 1
            if len(self.examples) < SUMMARY_EXAMPLES:
                self.examples.append(detail)
            log.info("skipped %s", detail)
        dropped = set(bad)
        kept = [item for i, item in enumerate(items) if i not in dropped]
        if detection:
            record.instances = kept
        else:
            record.regions = kept
        if not kept:
            self.records_skipped += 1
            log.info("skipped %s: no box with an area is left", where)
            return False
        return True

    def summary(self) -> str | None:
        """One line: how many boxes and records were skipped, in which files, the first example."""
        if not self.boxes:
            return None
        files = ", ".join(f"{path} ({n})" for path, n in list(self.per_file.items())[:3])
        if len(self.per_file) > 3:
            files += f" and {len(self.per_file) - 3} more files"
        whole = (f"; {self.records_skipped} record(s) left without boxes were skipped whole"
                 if self.records_skipped else "")
        return (f"training data: skipped {self.boxes} box(es) with no area inside the image in {files}{whole}; "
                f"first: {self.examples[0]} (each one is in the log; `mask_grounding_dino dataset validate` "
                "lists them as degenerate_box)")

    def report(self) -> None:
        """Log the summary line (a warning) when anything was skipped."""
        line = self.summary()
        if line:
            log.warning(line)
