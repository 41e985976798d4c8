"""Packaged specs (TAO format): ``quickstart.yaml`` is the CPU preset of ``mask_grounding_dino quickstart``."""
