"""Annotated pictures: readable at a glance, true to the objects' own colours.

* Small images are drawn upscaled so their long side is at least ``min_size`` (512) pixels:
  a 256 px picture with 10 px text is unreadable. Only the picture grows; label files and
  ``results.json`` keep the original coordinates.
* Masks: an anti-aliased outline in the class colour plus a light fill (``mask_alpha``
  0.12), so an object keeps its apparent colour (a red fill over a blue square would make
  "blue square" look wrong; at 0.3 it already does).
* Boxes: ``outline_width`` pixels (TAO's ``inference.outline_width``) in the class colour.
* Tags: "phrase score" on the class colour, black or white text by contrast, sized to the
  picture, always inside it and kept off each other (``tags.py``).

Colours come from ``color_map`` (phrase -> colour name or ``#rrggbb``, TAO's
``inference.color_map``: the colour of that class's box, mask and tag) when it names the
phrase, else from a fixed palette indexed by the label, so a class keeps its colour
across images.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from ..model.results import Detections
from .tags import TagPlacer

#: Distinct, saturated colours, used when color_map does not name a phrase.
PALETTE = [(255, 56, 56), (0, 194, 255), (72, 249, 10), (255, 178, 29), (203, 56, 255), (26, 147, 52),
           (255, 112, 31), (0, 24, 236), (207, 210, 49), (255, 55, 199), (61, 219, 134), (132, 56, 255),
           (44, 153, 168), (255, 149, 200), (100, 115, 255), (146, 204, 23), (82, 0, 133), (255, 157, 151),
           (0, 212, 187), (52, 69, 147)]
#: Long side, in pixels, that small images are drawn at.
MIN_SIZE = 512


def _colour(phrase: str, label: int, color_map: dict | None) -> tuple[int, int, int]:
    if color_map:
        value = color_map.get(phrase)
        if value is not None:
            try:
                return ImageColor.getrgb(str(value))[:3]
            except ValueError:
                pass  # an unknown colour name falls back to the palette
    return PALETTE[int(label) % len(PALETTE)]


def _text_colour(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light tags, white on dark ones (relative luminance, sRGB weights)."""
    luminance = 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)    # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _upscaled(base: Image.Image, min_size: int) -> tuple[Image.Image, float]:
    scale = max(1.0, min_size / max(base.size)) if min_size else 1.0
    if scale == 1.0:
        return base.copy(), 1.0
    size = (round(base.width * scale), round(base.height * scale))
    return base.resize(size, Image.Resampling.LANCZOS), scale


def _draw_masks(canvas: np.ndarray, masks: np.ndarray, colours: list, alpha: float, threshold: float,
                width: int) -> None:
    """Blend each mask ``[h, w]`` (original size, bool or scores) into ``canvas`` ``[H, W, 3]`` uint8
    at ``alpha`` and outline it, in place."""
    height, wide = canvas.shape[:2]
    for mask, colour in zip(masks, colours):
        soft = mask.astype(np.float32)
        if soft.shape != (height, wide):   # linear resize then threshold: smooth edges when upscaled
            soft = cv2.resize(soft, (wide, height), interpolation=cv2.INTER_LINEAR)
        region = soft > (0.5 if mask.dtype == bool else threshold)
        if not region.any():
            continue
        tint = np.asarray(colour, np.float32)
        canvas[region] = ((1 - alpha) * canvas[region] + alpha * tint).round().astype(np.uint8)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in colour), width, cv2.LINE_AA)


def draw_detections(image: Image.Image | np.ndarray, detections: Detections, *,
                    color_map: dict | None = None, outline_width: int = 3, mask_alpha: float = 0.12,
                    mask_threshold: float = 0.5, show_scores: bool = True, min_size: int = MIN_SIZE) -> Image.Image:
    """A new RGB picture of ``image`` with ``detections`` drawn (see the module docstring).

    Its long side is ``max(original, min_size)`` (0 keeps the original size); boxes and masks
    are in the original image's pixels.
    """
    base = (Image.fromarray(image) if isinstance(image, np.ndarray) else image).convert("RGB")
    picture, scale = _upscaled(base, min_size)
    arrays = detections.numpy()
    colours = [_colour(p, int(lbl), color_map) for p, lbl in zip(arrays.phrases, arrays.labels)]
    order = [int(i) for i in np.argsort(arrays.scores, kind="stable")]      # best drawn last, on top
    line = max(1, int(outline_width))
    canvas = np.array(picture, dtype=np.uint8)
    if arrays.masks is not None and len(order):
        _draw_masks(canvas, arrays.masks[order], [colours[i] for i in order], mask_alpha, mask_threshold,
                    max(1, line - 1))
    out = Image.fromarray(canvas)
    pen = ImageDraw.Draw(out)
    boxes = [tuple(float(v) * scale for v in box) for box in arrays.boxes]
    for i in order:
        pen.rectangle(boxes[i], outline=colours[i], width=line)
    font_size = int(np.clip(round(0.032 * (out.width + out.height) / 2), 14, 40))
    font, pad = _font(font_size), max(2, font_size // 5)
    placer, tags = TagPlacer(out.size), {}
    for i in reversed(order):                                                  # best placed first
        text = f"{arrays.phrases[i]} {arrays.scores[i]:.2f}" if show_scores else arrays.phrases[i]
        left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
        x1, y1, x2, y2 = boxes[i]
        rect = placer.place((x1 - line / 2, y1 - line / 2, x2 + line / 2, y2 + line / 2),
                            (right - left + 2 * pad, bottom - top + 2 * pad))
        tags[i] = (rect, text, left, top)
    for i in order:
        rect, text, left, top = tags[i]
        pen.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=colours[i])
        pen.text((rect[0] + pad - left, rect[1] + pad - top), text, fill=_text_colour(colours[i]), font=font)
    return out
