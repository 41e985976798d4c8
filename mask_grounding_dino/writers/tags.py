"""Where the "phrase score" tags of an annotated picture go: always inside the picture, and
not over each other when another spot near the box is free.

Each tag tries, in order: above the box's top-left corner, inside the box at its top, below
the box, inside the box at its bottom; every spot is moved into the picture first. The first
spot that overlaps no tag placed before wins; when none is free, the tag slides down (then up)
from the first spot, up to four of its heights; failing that, it takes the spot it overlaps least.
Higher scores are placed first, so they get the best spots.
"""

from __future__ import annotations

from dataclasses import dataclass

Rect = tuple[int, int, int, int]     # x1, y1, x2, y2 (x2, y2 exclusive)
#: Tag heights a tag may slide from its first spot: further away it no longer reads as the box's.
_MAX_SLIDE = 4


@dataclass
class TagPlacer:
    """Places tags of ``(width, height)`` pixels in a ``picture_size`` (width, height) picture."""

    picture_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.placed: list[Rect] = []

    def _inside(self, x: float, y: float, w: int, h: int) -> Rect:
        width, height = self.picture_size
        x = int(round(min(max(x, 0), max(width - w, 0))))
        y = int(round(min(max(y, 0), max(height - h, 0))))
        return (x, y, x + w, y + h)

    def _overlap(self, rect: Rect) -> int:
        total = 0
        for other in self.placed:
            dx = min(rect[2], other[2]) - max(rect[0], other[0])
            dy = min(rect[3], other[3]) - max(rect[1], other[1])
            total += max(dx, 0) * max(dy, 0)
        return total

    def place(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> Rect:
        """The tag's rectangle for a box ``(x1, y1, x2, y2)`` in picture pixels."""
        w, h = size
        x1, y1, x2, y2 = box
        spots = [self._inside(x1, y1 - h, w, h), self._inside(x1, y1, w, h),
                 self._inside(x1, y2, w, h), self._inside(x1, y2 - h, w, h)]
        first = spots[0]
        slides = [self._inside(first[0], first[1] + sign * k * h, w, h)
                  for sign in (1, -1) for k in range(1, _MAX_SLIDE + 1)]
        candidates = spots + slides
        chosen = next((rect for rect in candidates if self._overlap(rect) == 0), None)
        if chosen is None:
            chosen = min(candidates, key=self._overlap)
        self.placed.append(chosen)
        return chosen
