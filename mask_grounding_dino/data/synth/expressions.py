"""Referring expressions for the synthetic VG split ("the largest red circle").

An expression is only produced when it is unambiguous in its scene: "largest"
needs the largest object to be clearly larger than the next (>= 1.3x visible
area), "on the left" needs a clear horizontal gap (>= 8% of the width).
No-target expressions name a category absent from the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .categories import Category
from .scene import Scene

_SIZE_RATIO = 1.3
_GAP_FRACTION = 0.08


@dataclass(frozen=True)
class Expression:
    """A referring expression and the indices of the scene objects it refers to."""

    text: str
    targets: tuple[int, ...]
    kind: str  # category | all | largest | smallest | left | right | color | shape | empty
    category: int = -1  # the category named, when the expression names one

    @property
    def empty(self) -> bool:
        return not self.targets


def candidate_expressions(scene: Scene, categories: list[Category]) -> list[Expression]:
    """Every unambiguous expression about ``scene`` (deterministic order)."""
    out: list[Expression] = []
    by_cat: dict[int, list[int]] = {}
    for i, obj in enumerate(scene.objects):
        by_cat.setdefault(obj.category.id, []).append(i)
    for cat_id in sorted(by_cat):
        idx = by_cat[cat_id]
        name = scene.objects[idx[0]].category.name
        if len(idx) == 1:
            out.append(Expression(f"the {name}", tuple(idx), "category", cat_id))
            continue
        out.append(Expression(f"all {name}s", tuple(idx), "all", cat_id))
        areas = sorted(((scene.objects[i].area, i) for i in idx), reverse=True)
        if areas[0][0] >= _SIZE_RATIO * areas[1][0]:
            out.append(Expression(f"the largest {name}", (areas[0][1],), "largest", cat_id))
        if areas[-2][0] >= _SIZE_RATIO * areas[-1][0]:
            out.append(Expression(f"the smallest {name}", (areas[-1][1],), "smallest", cat_id))
        centers = sorted((_center_x(scene, i), i) for i in idx)
        gap = _GAP_FRACTION * scene.width
        if centers[1][0] - centers[0][0] >= gap:
            out.append(Expression(f"the {name} on the left", (centers[0][1],), "left", cat_id))
        if centers[-1][0] - centers[-2][0] >= gap:
            out.append(Expression(f"the {name} on the right", (centers[-1][1],), "right", cat_id))
    colors = sorted({o.category.color for o in scene.objects})
    for color in colors:
        idx = tuple(i for i, o in enumerate(scene.objects) if o.category.color == color)
        out.append(Expression(f"all {color} objects", idx, "color"))
    shapes = sorted({o.category.shape for o in scene.objects})
    for shape in shapes:
        idx = tuple(i for i, o in enumerate(scene.objects) if o.category.shape == shape)
        out.append(Expression(f"all {shape}s", idx, "shape"))
    return out


def empty_expressions(scene: Scene, categories: list[Category]) -> list[Expression]:
    """No-target expressions: categories that do not appear in ``scene``."""
    present = {o.category.id for o in scene.objects}
    out = []
    for cat in categories:
        if cat.id not in present:
            out.append(Expression(f"the {cat.name}", (), "empty", cat.id))
            out.append(Expression(f"the {cat.name} on the left", (), "empty", cat.id))
    return out


def choose_expressions(scene: Scene, categories: list[Category], count: int, empty_prob: float,
                       rng: np.random.Generator) -> list[Expression]:
    """Up to ``count`` distinct expressions; one is a no-target one with ``empty_prob``."""
    chosen: list[Expression] = []
    empties = empty_expressions(scene, categories)
    want_empty = bool(empties) and (rng.uniform() < empty_prob or not scene.objects)
    if want_empty:
        chosen.append(empties[int(rng.integers(0, len(empties)))])
    cands = candidate_expressions(scene, categories)
    # Prefer the specific kinds (what a referring model must learn) over "all ..." ones.
    weights = np.array([3.0 if e.kind in ("largest", "smallest", "left", "right") else 1.0 for e in cands])
    take = min(len(cands), count - len(chosen))
    if take > 0:
        picks = rng.choice(len(cands), size=take, replace=False, p=weights / weights.sum())
        chosen.extend(cands[int(i)] for i in sorted(picks))
    return chosen


def _center_x(scene: Scene, index: int) -> float:
    x1, _, x2, _ = scene.objects[index].bbox_xyxy
    return (x1 + x2) / 2.0
