"""The built-in synthetic dataset: coloured shapes with visible-part masks, in TAO's layout.

Python API::

    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset
    generate_synthetic_dataset("out/", SynthConfig(num_train=200, num_val=50, seed=1))

CLI: ``mask_grounding_dino dataset synth --out DIR`` (``data/tools/synth.py``).
"""

from .categories import DEFAULT_COLORS, DEFAULT_SHAPES, PALETTE, SHAPES, Category, build_categories
from .expressions import Expression, candidate_expressions, choose_expressions
from .config import SplitSummary, SynthConfig, SynthSummary
from .generate import generate_synthetic_dataset, image_rng
from .scene import Scene, SceneObject, SceneParams, encode_image, render_scene

__all__ = [
    "DEFAULT_COLORS", "DEFAULT_SHAPES", "PALETTE", "SHAPES", "Category", "build_categories",
    "Expression", "candidate_expressions", "choose_expressions",
    "SplitSummary", "SynthConfig", "SynthSummary", "generate_synthetic_dataset", "image_rng",
    "Scene", "SceneObject", "SceneParams", "encode_image", "render_scene",
]
