"""mask_grounding_dino: open-vocabulary, text-prompted instance segmentation.

An open, drop-in counterpart of NVIDIA TAO's Mask Grounding DINO: the same spec
files, dataset layout, checkpoint layout, ONNX inputs/outputs and metric names.
"""

__version__ = "0.1.0"
