"""Dataset tools run as ``mask_grounding_dino dataset <tool> ...``.

Each module here is one tool exposing ``add_arguments(parser)``, ``run(args) -> int`` and a
module docstring whose first line is its help: ``validate`` (check a dataset), ``convert``
(COCO -> ODVG and other conversions), ``synth`` (the built-in synthetic dataset).
"""
