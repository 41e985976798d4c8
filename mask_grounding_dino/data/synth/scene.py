"""One synthetic image: sample objects, place them with bounded occlusion, render.

Objects are painted back to front into an instance-id map, so each mask is the
*visible* part of its object. An object is placed only if, after it is drawn,
every object (itself included, for clipping at the border) keeps at least
``min_visible`` of its ideal area; otherwise another position is tried and,
after a few tries, the object is dropped. So no pixel of an object colour is
ever left unannotated, and no annotation is hidden beyond the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .background import make_background, pixel_grid
from .categories import Category
from .shapes import ShapeSpec, random_angle


@dataclass(frozen=True)
class SceneParams:
    """How scenes are drawn. Sizes are for a 256 px short side and scale with it.

    min_objects/max_objects: instances per image (before placement failures).
    empty_fraction: share of images drawn with no object at all.
    min_size/max_size: object diameter range in px at 256 (log-uniform).
    min_visible: least visible share of an object's ideal area (occlusion + border).
    clutter: at most this many unlabelled outlines/lines in the background.
    noise: std of the Gaussian pixel noise added to the whole image.
    """

    min_objects: int = 0
    max_objects: int = 8
    empty_fraction: float = 0.05
    min_size: float = 20.0
    max_size: float = 100.0
    min_visible: float = 0.55
    clutter: int = 4
    noise: float = 4.0
    placement_tries: int = 12


@dataclass
class SceneObject:
    """A placed object and its visible mask ``[H, W]`` bool."""

    category: Category
    spec: ShapeSpec
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        """Tight box of the visible mask; right/bottom edges exclusive (COCO convention)."""
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


@dataclass
class Scene:
    """A rendered image ``[H, W, 3]`` uint8 RGB and its objects in painting order."""

    image: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def sample_categories(categories: list[Category], params: SceneParams,
                      rng: np.random.Generator) -> list[Category]:
    """Categories of the objects to try to place (may repeat)."""
    if params.max_objects <= 0 or rng.uniform() < params.empty_fraction:
        return []
    low = max(1, params.min_objects)
    count = int(rng.integers(low, max(low, params.max_objects) + 1))
    return [categories[int(i)] for i in rng.integers(0, len(categories), size=count)]


def _propose(shape: str, h: int, w: int, params: SceneParams, rng: np.random.Generator) -> ShapeSpec:
    scale = min(h, w) / 256.0
    lo, hi = params.min_size * scale, params.max_size * scale
    size = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    # Centres may sit slightly outside the interior: some objects touch the border.
    margin = 0.3 * size
    cx = float(rng.uniform(margin, max(margin + 1, w - margin)))
    cy = float(rng.uniform(margin, max(margin + 1, h - margin)))
    return ShapeSpec(shape, cx, cy, size, random_angle(shape, rng))


def place_objects(categories: list[Category], h: int, w: int, params: SceneParams,
                  rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[Category, ShapeSpec]]]:
    """Place objects back to front; returns the id map ``[H, W]`` int32 (0 = background,
    k = k-th placed object) and the placed (category, shape) pairs."""
    idmap = np.zeros((h, w), np.int32)
    placed: list[tuple[Category, ShapeSpec]] = []
    ideal: list[float] = []
    visible: list[int] = []
    scratch = np.zeros((h, w), np.uint8)
    for cat in categories:
        for _ in range(params.placement_tries):
            spec = _propose(cat.shape, h, w, params, rng)
            scratch[:] = 0
            spec.draw(scratch, 1)
            footprint = scratch.astype(bool)
            own = int(footprint.sum())
            area = spec.area()
            if own < params.min_visible * area or own == 0:
                continue  # clipped too much by the border
            covered = np.bincount(idmap[footprint], minlength=len(placed) + 1)[1:]
            if any(visible[i] - covered[i] < params.min_visible * ideal[i] for i in range(len(placed))):
                continue  # would hide an earlier object beyond the threshold
            for i in range(len(placed)):
                visible[i] -= int(covered[i])
            idmap[footprint] = len(placed) + 1
            placed.append((cat, spec))
            ideal.append(area)
            visible.append(own)
            break
    return idmap, placed


def render_scene(categories: list[Category], h: int, w: int, params: SceneParams,
                 rng: np.random.Generator, chosen: list[Category] | None = None) -> Scene:
    """Draw one image. ``chosen``: categories to place (default: sampled)."""
    chosen = sample_categories(categories, params, rng) if chosen is None else chosen
    image = make_background(h, w, rng, params.clutter)
    idmap, placed = place_objects(chosen, h, w, params, rng)
    objects: list[SceneObject] = []
    if placed:
        ys, xs = pixel_grid(h, w)
        for k, (cat, spec) in enumerate(placed, start=1):
            mask = idmap == k
            # Flat colour, slightly jittered, with a gentle linear shading so objects
            # look solid; the hue stays that of the colour word.
            color = np.asarray(cat.rgb, np.float32) * rng.uniform(0.88, 1.08) + rng.uniform(-10, 10, 3)
            gx, gy = rng.uniform(-0.12, 0.12, 2)
            shade = 1.0 + (gx * (xs[mask] - spec.cx) + gy * (ys[mask] - spec.cy)) / max(spec.size, 1.0)
            image[mask] = color[None, :] * shade[:, None]
            objects.append(SceneObject(cat, spec, mask))
    if params.noise > 0:
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(params.noise)
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8), objects)


def encode_image(image: np.ndarray, fmt: str = "jpg", quality: int = 92) -> bytes:
    """RGB ``[H, W, 3]`` uint8 -> JPEG/PNG bytes (deterministic for a given libjpeg/zlib)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 only fails on invalid input
        raise RuntimeError(f"cv2 could not encode a {fmt} image")
    return buf.tobytes()
