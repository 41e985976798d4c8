"""Shape geometry and rasterisation (cv2, no anti-aliasing: crisp, exact masks).

Every shape is drawn from its centre, its ``size`` (the diameter of its
circumscribed circle, in pixels) and a rotation. Squares turn at most 20 degrees
and diamonds are squashed rhombi at 45 degrees, so the two never look alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Fixed-point bits for cv2 polygon vertices: sub-pixel accurate outlines.
_SHIFT = 4
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class ShapeSpec:
    """Where and how one object is drawn. ``size``: circumscribed diameter (px)."""

    shape: str
    cx: float
    cy: float
    size: float
    angle: float  # radians

    def polygon(self) -> np.ndarray | None:
        """Vertices ``[K, 2]`` (x, y) float, or None for a circle."""
        r = self.size / 2.0
        if self.shape == "circle":
            return None
        if self.shape == "square":
            angles = self.angle + np.pi / 4 + np.arange(4) * np.pi / 2
            radii = np.full(4, r)
        elif self.shape == "triangle":
            angles = self.angle - np.pi / 2 + np.arange(3) * 2 * np.pi / 3
            radii = np.full(3, r)
        elif self.shape == "diamond":
            # Rhombus: tall axis r, short axis 0.62 r (a square would be 1.0).
            angles = self.angle - np.pi / 2 + np.arange(4) * np.pi / 2
            radii = np.array([r, 0.62 * r, r, 0.62 * r])
        elif self.shape == "star":
            angles = self.angle - np.pi / 2 + np.arange(10) * np.pi / 5
            radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        elif self.shape == "hexagon":
            angles = self.angle + np.arange(6) * np.pi / 3
            radii = np.full(6, r)
        else:  # pragma: no cover - categories.py validates names
            raise ValueError(f"unknown shape {self.shape!r}")
        return np.stack([self.cx + radii * np.cos(angles), self.cy + radii * np.sin(angles)], axis=1)

    def area(self) -> float:
        """Area of the ideal (unclipped, unoccluded) shape in px^2."""
        poly = self.polygon()
        if poly is None:
            return math.pi * (self.size / 2.0) ** 2
        return float(cv2.contourArea(poly.astype(np.float32)))

    def draw(self, canvas: np.ndarray, value: int) -> None:
        """Fill the shape into ``canvas`` ([H, W] uint8/int32) with ``value``, in place."""
        poly = self.polygon()
        if poly is None:
            center = (int(round(self.cx * _SCALE)), int(round(self.cy * _SCALE)))
            cv2.circle(canvas, center, int(round(self.size / 2.0 * _SCALE)), int(value), -1,
                       lineType=cv2.LINE_8, shift=_SHIFT)
        else:
            pts = np.round(poly * _SCALE).astype(np.int32).reshape(1, -1, 2)
            cv2.fillPoly(canvas, pts, int(value), lineType=cv2.LINE_8, shift=_SHIFT)


def random_angle(shape: str, rng: np.random.Generator) -> float:
    """A rotation that keeps each shape recognisable (squares stay square-ish)."""
    if shape == "square":
        return float(rng.uniform(-np.pi / 9, np.pi / 9))        # +-20 degrees
    if shape == "diamond":
        return float(rng.uniform(-np.pi / 18, np.pi / 18))      # +-10 degrees
    if shape == "circle":
        return 0.0
    return float(rng.uniform(-np.pi, np.pi))
