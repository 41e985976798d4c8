"""TAO's inference label files: one KITTI-style line per detection.

    label 0.00 0 0.00 x1 y1 x2 y2 0.00 0.00 0.00 0.00 0.00 0.00 0.00 score

A file with no detections contains just ``Empty`` (as TAO). Whitespace inside
a label (``red circle``) is written as ``_`` so that every line still splits
into exactly 16 fields; TAO writes the raw phrase, which breaks KITTI parsers.
"""

from __future__ import annotations

import os
import re

from ..model.results import Detections
from ..utils.atomic import atomic_write_text

_SPACE = re.compile(r"\s+")


def kitti_label(text: str) -> str:
    return _SPACE.sub("_", text.strip()) or "object"


def format_kitti(detections: Detections) -> str:
    arrays = detections.numpy()
    if len(arrays) == 0:
        return "Empty\n"
    lines = []
    for box, score, phrase in zip(arrays.boxes, arrays.scores, arrays.phrases):
        x1, y1, x2, y2 = (float(v) for v in box)
        lines.append(f"{kitti_label(phrase)} 0.00 0 0.00 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
                     f"0.00 0.00 0.00 0.00 0.00 0.00 0.00 {float(score):.4f}")
    return "\n".join(lines) + "\n"


def write_kitti(detections: Detections, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, format_kitti(detections))
