"""mask_grounding_dino: open-vocabulary, text-prompted instance segmentation.

An open, drop-in counterpart of NVIDIA TAO's Mask Grounding DINO: the same spec
files, dataset layout, checkpoint layout, ONNX inputs/outputs and metric names.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import mask_grounding_dino` stays cheap (no torch) until the API is used.
    if name == "Predictor":
        from .api import Predictor
        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
