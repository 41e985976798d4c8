"""The words of the synthetic dataset: colours x shapes, one category per pair.

A category name always holds both words ("red circle"), so a prompt must use
colour AND shape to single out a class. Object colours are saturated (HSV
saturation >= 0.75); backgrounds and clutter stay below 0.3 (``background.py``),
so a colour word is never ambiguous with the scenery.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError

#: Object colours (RGB). Chosen far apart in hue and all strongly saturated.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (235, 205, 30),
    "orange": (240, 125, 20),
    "purple": (135, 45, 175),
    "cyan": (25, 185, 200),
    "pink": (235, 80, 170),
}

#: Shapes the renderer knows (``shapes.py``).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "hexagon")

DEFAULT_COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Category:
    """One class: ``id`` is contiguous from 0, ``name`` is ``"<colour> <shape>"``."""

    id: int
    color: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return PALETTE[self.color]


def build_categories(colors: tuple[str, ...] | list[str] = DEFAULT_COLORS,
                     shapes: tuple[str, ...] | list[str] = DEFAULT_SHAPES) -> list[Category]:
    """All colour x shape pairs, colour-major, ids 0..C*S-1."""
    colors, shapes = list(colors), list(shapes)
    problems = []
    for kind, given, allowed in (("colours", colors, tuple(PALETTE)), ("shapes", shapes, SHAPES)):
        unknown = [w for w in given if w not in allowed]
        if unknown or not given or len(set(given)) != len(given):
            what = f"unknown {kind} {unknown}" if unknown else f"{kind} {given} are empty or repeat"
            problems.append(f"synthetic dataset: {what}; allowed {kind}: {', '.join(allowed)} "
                            "(each at most once)")
    if problems:
        raise UserError(problems)
    return [Category(i, c, s) for i, (c, s) in enumerate((c, s) for c in colors for s in shapes)]
