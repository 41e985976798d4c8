"""Backgrounds: gradients, noise, stripes, checkers and blotches, plus unlabelled clutter.

All scenery is drawn from low-saturation colours (HSV saturation < 0.3), so it
never reuses an object colour (those are saturated, ``categories.py``). Clutter
(outlines and lines) is drawn into the background before the objects, so
objects occlude it and it is never annotated.
"""

from __future__ import annotations

import colorsys
import functools

import cv2
import numpy as np

KINDS = ("gradient", "noise", "stripes", "checker", "blotches")


@functools.lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(ys, xs)`` float32 ``[H, W]`` coordinate grids (cached per size)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def muted_color(rng: np.random.Generator, max_saturation: float = 0.28) -> np.ndarray:
    """A random low-saturation RGB colour, float [3] in 0..255."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0, max_saturation), rng.uniform(0.25, 0.92)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _gradient(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = muted_color(rng), muted_color(rng)
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = pixel_grid(h, w)
    t = xs * np.cos(theta) / max(w, 1) + ys * np.sin(theta) / max(h, 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _noise(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = muted_color(rng)
    # Low-frequency noise: a small random field, upsampled smoothly.
    small = rng.standard_normal((max(2, h // 16), max(2, w // 16), 1), dtype=np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    return base[None, None] + 22.0 * field


def _stripes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = muted_color(rng), muted_color(rng)
    period = rng.uniform(8, 40)
    theta = rng.uniform(0, np.pi)
    ys, xs = pixel_grid(h, w)
    t = 0.5 + 0.5 * np.sin((xs * np.cos(theta) + ys * np.sin(theta)) * 2 * np.pi / period)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _checker(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = muted_color(rng), muted_color(rng)
    cell = int(rng.integers(10, 48))
    ys, xs = pixel_grid(h, w)
    t = ((np.floor(xs / cell) + np.floor(ys / cell)) % 2).astype(np.float32)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _blotches(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = muted_color(rng)
    for _ in range(int(rng.integers(3, 9))):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(8, max(9, w // 3))), int(rng.integers(8, max(9, h // 3))))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    muted_color(rng).tolist(), -1, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 3)


_MAKERS = {"gradient": _gradient, "noise": _noise, "stripes": _stripes, "checker": _checker,
           "blotches": _blotches}


def add_clutter(img: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Draw ``count`` unlabelled thin outlines and lines in muted colours, in place."""
    h, w = img.shape[:2]
    for _ in range(count):
        color = muted_color(rng, 0.3).tolist()
        thickness = int(rng.integers(1, 4))
        kind = int(rng.integers(0, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), color, thickness)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(5, max(6, min(h, w) // 6))), color, thickness)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(8, 60)), y + int(rng.integers(8, 60))),
                          color, thickness)


def make_background(h: int, w: int, rng: np.random.Generator, clutter: int = 0) -> np.ndarray:
    """A background image ``[H, W, 3]`` float32 (0..255) of a random kind, with clutter."""
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    img = np.ascontiguousarray(_MAKERS[kind](h, w, rng), dtype=np.float32)
    if clutter > 0:
        add_clutter(img, rng, int(rng.integers(0, clutter + 1)))
    return img
