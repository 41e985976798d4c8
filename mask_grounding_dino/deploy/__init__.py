"""Running trained models: PyTorch and ONNX Runtime backends behind one pre/post-processing.

    backend = open_backend("model.onnx")                 # or a .pth checkpoint
    detector = Detector(backend, Thresholds(conf_threshold=0.3))
    detections = detector.detect_classes(batch, ["person", "dog"])

Pieces: ``backend.py`` (the interface + PyTorch), ``onnx_runner.py`` (onnxruntime),
``tensorrt.py`` (engines: a clear error until a runner exists), ``loading.py`` (file ->
backend), ``detector.py`` (prompts, chunking, post-processing), ``preprocess.py`` (user
images -> batch), ``results_writer.py`` (inference files), ``nvdsinfer.py`` (DeepStream
config). Imports are lazy so ``import mask_grounding_dino.deploy`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Backend": ".backend", "TorchBackend": ".backend",
    "OnnxBackend": ".onnx_runner",
    "TensorRTUnavailable": ".tensorrt", "is_engine_path": ".tensorrt",
    "open_backend": ".loading", "load_torch_model": ".loading",
    "Detector": ".detector", "ImageBatch": ".detector", "Thresholds": ".detector",
    "ImagePreprocessor": ".preprocess", "load_rgb": ".preprocess",
    "InferenceWriter": ".results_writer",
    "write_nvdsinfer_config": ".nvdsinfer", "nvdsinfer_config": ".nvdsinfer",
    "resolve_device": ".devices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
