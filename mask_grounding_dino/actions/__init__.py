"""One module per CLI action (``mask_grounding_dino <action> -e spec.yaml``): ``run(cfg) -> int``.

Actions are thin recipes over the layers below (spec -> data -> model ->
post-process -> metrics / files)."""
