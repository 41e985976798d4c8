"""DeepStream ``nvdsinfer_config.yaml`` for an exported ONNX file (``export.serialize_nvdsinfer``).

Keys written (Gst-nvinfer YAML, ``property`` and ``class-attrs-all`` groups; lists joined with ``;``):

property:
    onnx-file               the ONNX file name (relative: the config sits next to it)
    model-engine-file       where DeepStream caches the engine it builds (``<onnx>_b<B>_gpu<id>_fp32.engine``)
    infer-dims              ``3;H;W``, the exported image size
    batch-size              the exported batch (1 for a dynamic-batch file, TAO's advice)
    network-mode            0 (FP32)
    model-color-format      0 (RGB)
    net-scale-factor        1 / (255 * std); DeepStream has one factor for all channels, so the
                            mean of ``input_std`` is used (at most 1.3 % off per channel for
                            ImageNet's std); the per-channel values are in the header comment
    offsets                 ``255 * input_mean`` per channel (``R;G;B``)
    maintain-aspect-ratio   0 (plain resize to H x W, as TAO Deploy and our ONNX runner)
    network-type            100 (other: raw output tensors)
    output-tensor-meta      1 (tensors attached as metadata for a custom parser)
    input-tensor-from-meta  1 (the five text inputs come from a preprocessing element)
    output-blob-names       the graph's outputs, TAO's names
    cluster-mode            4 (no clustering: post-processing does NMS)
    gie-unique-id           1
class-attrs-all:
    pre-cluster-threshold   ``inference.conf_threshold``
    topk                    ``model.num_select``
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..utils.atomic import atomic_write_text

FILE_NAME = "nvdsinfer_config.yaml"


def nvdsinfer_config(onnx_file: str | os.PathLike, *, input_size: tuple[int, int], output_names: Sequence[str],
                     batch_size: int | None = None, mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225), conf_threshold: float = 0.5,
                     num_select: int = 300, gpu_id: int = 0) -> dict:
    """The config as a dict (``property`` and ``class-attrs-all``), values as DeepStream reads them."""
    name = Path(onnx_file).name
    batch = int(batch_size) if batch_size else 1
    height, width = (int(v) for v in input_size)
    scale = 1.0 / (255.0 * (sum(float(s) for s in std) / len(std)))
    return {
        "property": {
            "onnx-file": name,
            "model-engine-file": f"{name}_b{batch}_gpu{int(gpu_id)}_fp32.engine",
            "infer-dims": f"3;{height};{width}",
            "batch-size": batch,
            "network-mode": 0,
            "model-color-format": 0,
            "net-scale-factor": round(scale, 10),
            "offsets": ";".join(f"{255.0 * float(m):.3f}" for m in mean),
            "maintain-aspect-ratio": 0,
            "network-type": 100,
            "output-tensor-meta": 1,
            "input-tensor-from-meta": 1,
            "output-blob-names": ";".join(output_names),
            "cluster-mode": 4,
            "gie-unique-id": 1,
        },
        "class-attrs-all": {
            "pre-cluster-threshold": float(conf_threshold),
            "topk": int(num_select),
        },
    }


def write_nvdsinfer_config(onnx_file: str | os.PathLike, **kwargs) -> Path:
    """Write :func:`nvdsinfer_config` as ``nvdsinfer_config.yaml`` next to ``onnx_file``; returns its path."""
    config = nvdsinfer_config(onnx_file, **kwargs)
    std = kwargs.get("std", (0.229, 0.224, 0.225))
    header = (f"# DeepStream Gst-nvinfer configuration for {Path(onnx_file).name} (mask_grounding_dino export).\n"
              f"# Pixels: (x - offsets) * net-scale-factor; training used per-channel std "
              f"{[float(s) for s in std]}, DeepStream takes one factor (their mean).\n"
              "# The text inputs (input_ids, attention_mask, position_ids, token_type_ids, text_token_mask)\n"
              "# must be attached by a preprocessing element (input-tensor-from-meta: 1).\n")
    path = Path(onnx_file).with_name(FILE_NAME)
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path
