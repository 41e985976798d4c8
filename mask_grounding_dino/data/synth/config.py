"""What a synthetic dataset is made of (:class:`SynthConfig`) and what was written
(:class:`SynthSummary`): shared by the generator and the README it writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import UserError
from .categories import DEFAULT_COLORS, DEFAULT_SHAPES
from .scene import SceneParams


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic dataset (all recorded in ``dataset.json``).

    num_train/num_val/num_vg: images per split (vg: 0 skips the split).
    width/height: image size in px. colors/shapes: category words (see categories.py).
    expressions_per_image: VG expressions per image; empty_expression_prob: chance
    that one of them names an absent category (``empty: true``).
    extract_images: also write each split's images into ``<split>/images/``.
    """

    num_train: int = 1000
    num_val: int = 200
    num_vg: int = 200
    seed: int = 0
    width: int = 256
    height: int = 256
    colors: tuple[str, ...] = DEFAULT_COLORS
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    scene: SceneParams = field(default_factory=SceneParams)
    image_format: str = "jpg"
    jpeg_quality: int = 92
    expressions_per_image: int = 3
    empty_expression_prob: float = 0.25
    extract_images: bool = False

    def validate(self) -> None:
        problems = []
        for key in ("num_train", "num_val", "num_vg"):
            if getattr(self, key) < 0:
                problems.append(f"{key} must be >= 0 (got {getattr(self, key)})")
        if self.width < 32 or self.height < 32:
            problems.append(f"image size must be at least 32x32 (got {self.width}x{self.height})")
        if self.image_format not in ("jpg", "png"):
            problems.append(f"image_format must be jpg or png (got {self.image_format!r})")
        s = self.scene
        if not 0 <= s.min_objects <= s.max_objects:
            problems.append(f"need 0 <= min_objects <= max_objects (got {s.min_objects}, {s.max_objects})")
        if not 0 < s.min_size <= s.max_size:
            problems.append(f"need 0 < min_size <= max_size (got {s.min_size}, {s.max_size})")
        if not 0.0 < s.min_visible <= 1.0:
            problems.append(f"min_visible must be in (0, 1] (got {s.min_visible})")
        if not 0.0 <= s.empty_fraction <= 1.0:
            problems.append(f"empty_fraction must be in [0, 1] (got {s.empty_fraction})")
        if problems:
            raise UserError([f"synthetic dataset: {p}" for p in problems])


@dataclass
class SplitSummary:
    images: int = 0
    instances: int = 0
    empty_images: int = 0
    expressions: int = 0
    empty_expressions: int = 0
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


@dataclass
class SynthSummary:
    out_dir: str
    categories: list[str]
    splits: dict[str, SplitSummary]
