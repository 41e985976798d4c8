"""Annotated pictures: masks blended at alpha 0.4, boxes, and "phrase score" tags.

Colours come from the spec's ``inference.color_map`` (phrase -> colour name or
``#rrggbb``) when it names the phrase, else from a fixed palette indexed by the
label, so the same class keeps its colour across images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from ..model.results import Detections

#: Distinct, readable colours (tab20-like), used when color_map does not name a phrase.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
           (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229)]


def _colour(phrase: str, label: int, color_map: dict | None) -> tuple[int, int, int]:
    if color_map:
        value = color_map.get(phrase)
        if value is not None:
            try:
                return ImageColor.getrgb(str(value))[:3]
            except ValueError:
                pass  # an unknown colour name falls back to the palette
    return PALETTE[int(label) % len(PALETTE)]


def draw_detections(image: Image.Image | np.ndarray, detections: Detections, *,
                    color_map: dict | None = None, outline_width: int = 3, mask_alpha: float = 0.4,
                    mask_threshold: float = 0.5, show_scores: bool = True) -> Image.Image:
    """Return a new RGB picture with the detections drawn on ``image``."""
    base = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    canvas = np.asarray(base.convert("RGB"), dtype=np.float32).copy()
    arrays = detections.numpy()
    colours = [_colour(p, int(lbl), color_map) for p, lbl in zip(arrays.phrases, arrays.labels)]
    if arrays.masks is not None:
        for mask, colour in zip(arrays.masks, colours):
            region = mask > mask_threshold if mask.dtype != bool else mask
            if region.shape != canvas.shape[:2] or not region.any():
                continue
            canvas[region] = (1 - mask_alpha) * canvas[region] + mask_alpha * np.asarray(colour, np.float32)
    out = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for box, score, phrase, colour in zip(arrays.boxes, arrays.scores, arrays.phrases, colours):
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, int(outline_width)))
        tag = f"{phrase} {score:.2f}" if show_scores else phrase
        left, top, right, bottom = pen.textbbox((x1, y1), tag, font=font)
        ty = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1
        pen.rectangle([x1, ty, x1 + (right - left) + 4, ty + (bottom - top) + 2], fill=colour)
        pen.text((x1 + 2, ty), tag, fill=(255, 255, 255), font=font)
    return out
