"""``python -m mask_grounding_dino`` is the ``mask_grounding_dino`` command."""

from .cli import main

raise SystemExit(main())
