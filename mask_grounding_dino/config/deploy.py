"""``evaluate``, ``inference``, ``export`` and ``gen_trt_engine``: using a trained model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import MISSING, spec_field


@dataclass
class RunOnModelConfig:
    """Devices, model file and batch size shared by evaluate and inference."""

    num_gpus: int = spec_field(1, title="GPUs", valid_min=1, popular=True, description="GPUs per node.")
    gpu_ids: list[int] = spec_field(
        [0], title="GPU indices", automl_enabled=False, popular=True, description="Which GPUs to use.")
    num_nodes: int = spec_field(1, title="Nodes", valid_min=1, popular=True, description="Machines to use.")
    checkpoint: str = spec_field(
        MISSING, title="Checkpoint", description="Trained model (.pth) or ONNX file to run.")
    trt_engine: str = spec_field(
        "", title="TensorRT engine", description="Serialized TensorRT engine to run instead of the checkpoint.")
    results_dir: str = spec_field(
        "", title="Results folder", description="Where outputs go; empty uses <results_dir>/<action>.")
    batch_size: int = spec_field(
        -1, title="Batch size", valid_min=-1,
        description="Images per batch; -1 (the default) uses dataset.batch_size.")


@dataclass
class EvaluateConfig(RunOnModelConfig):
    """Scoring a model on ``dataset.test_data_sources``."""

    input_width: int | None = spec_field(
        None, title="Fixed input width", valid_min=1,
        description="Resize images to exactly this width; unset keeps the aspect-preserving resize.")
    input_height: int | None = spec_field(
        None, title="Fixed input height", valid_min=1,
        description="Resize images to exactly this height; unset keeps the aspect-preserving resize.")
    conf_threshold: float = spec_field(
        0.0, title="Score threshold", description="Detections scoring below this are dropped before scoring.")
    ioi_threshold: float = spec_field(
        0.5, title="IoI threshold", description="Intersection-over-itself level used to merge nested masks.")
    nms_threshold: float = spec_field(
        0.2, title="NMS threshold", description="Overlap above which lower-scoring duplicates are removed.")
    text_threshold: float = spec_field(
        0.3, title="Token threshold", description="Token score a word needs to be part of a predicted phrase.")


@dataclass
class InferenceConfig(RunOnModelConfig):
    """Predicting on ``dataset.infer_data_sources`` and drawing the results."""

    color_map: dict[str, Any] | None = spec_field(
        None, title="Colours", automl_enabled=False,
        description="Class name to drawing colour (a name or [r, g, b]); unset picks colours automatically.")
    conf_threshold: float = spec_field(
        0.5, title="Score threshold", description="Detections scoring below this are not written or drawn.")
    is_internal: bool = spec_field(
        False, title="Nested output folders", description="Write results in per-source sub-folders.")
    input_width: int | None = spec_field(
        960, title="Input width", valid_min=32,
        description="Resize images to exactly this width; null keeps the aspect-preserving resize.")
    input_height: int | None = spec_field(
        544, title="Input height", valid_min=32,
        description="Resize images to exactly this height; null keeps the aspect-preserving resize.")
    outline_width: int = spec_field(
        3, title="Outline width", valid_min=1, description="Line width of drawn boxes, in pixels.")
    ioi_threshold: float = spec_field(
        0.5, title="IoI threshold", description="Intersection-over-itself level used to merge nested masks.")
    nms_threshold: float = spec_field(
        0.2, title="NMS threshold", description="Overlap above which lower-scoring duplicates are removed.")
    text_threshold: float = spec_field(
        0.3, title="Token threshold", description="Token score a word needs to be part of a predicted phrase.")


@dataclass
class ExportConfig:
    """Writing the model as ONNX (image and text tensors as inputs)."""

    results_dir: str = spec_field("", title="Results folder", description="Where logs of the export go.")
    gpu_id: int = spec_field(0, title="GPU index", description="GPU used while tracing.")
    checkpoint: str = spec_field(MISSING, title="Checkpoint", description="Trained model to export.")
    onnx_file: str = spec_field(MISSING, title="ONNX file", description="Path of the ONNX file to write.")
    on_cpu: bool = spec_field(False, title="Trace on CPU", description="Trace the model on the CPU.")
    input_channel: int = spec_field(
        3, title="Input channels", valid_options=(1, 3), valid_min=1, schema_type="ordered_int",
        description="Channels of the image input.")
    input_width: int = spec_field(960, title="Input width", valid_min=32, description="Image input width.")
    input_height: int = spec_field(544, title="Input height", valid_min=32, description="Image input height.")
    opset_version: int = spec_field(17, title="ONNX opset", valid_min=1, description="ONNX operator set version.")
    batch_size: int = spec_field(
        -1, title="Batch size", valid_min=-1, description="Fixed batch size of the inputs; -1 makes it dynamic.")
    verbose: bool = spec_field(False, title="Verbose", description="Print the traced graph.")
    format: str = spec_field(
        "onnx", title="Format", valid_options=("onnx", "xdl"), description="Output format.")
    serialize_nvdsinfer: bool = spec_field(
        False, title="DeepStream config",
        description="Also write a DeepStream nvinfer configuration next to the ONNX file.")


@dataclass
class TensorRTConfig:
    """TensorRT builder settings."""

    workspace_size: int = spec_field(
        8192, title="Workspace (MB)", valid_min=0, description="Scratch memory the builder may use, in MB.")
    min_batch_size: int = spec_field(
        1, title="Smallest batch", valid_min=1, popular=True, description="Lower batch bound of the profile.")
    opt_batch_size: int = spec_field(
        1, title="Tuned batch", valid_min=1, popular=True, description="Batch size the builder optimises for.")
    max_batch_size: int = spec_field(
        4, title="Largest batch", valid_min=1, description="Upper batch bound of the profile.")
    layers_precision: list[str] = spec_field(
        [], title="Per-layer precision", automl_enabled=False,
        description="Entries 'layer_name:precision' forcing the precision of single layers.")
    data_type: str = spec_field(
        "FP32", title="Engine precision", valid_options=("FP32", "FP16"), ignore_case=True,
        description="Arithmetic precision of the engine.")


@dataclass
class GenTrtEngineConfig:
    """Building a TensorRT engine from the exported ONNX file."""

    results_dir: str = spec_field("", title="Results folder", description="Where logs of the build go.")
    gpu_id: int = spec_field(
        0, title="GPU index", valid_min=0, popular=True, description="GPU the engine is built for.")
    onnx_file: str = spec_field(MISSING, title="ONNX file", description="Exported model to convert.")
    trt_engine: str = spec_field(MISSING, title="Engine file", description="Path of the engine to write.")
    timing_cache: str = spec_field(
        "", title="Timing cache", description="File that stores kernel timings between builds.")
    batch_size: int = spec_field(
        -1, title="Batch size", valid_min=-1, popular=True,
        description="Fixed batch size; -1 uses the tensorrt batch profile.")
    verbose: bool = spec_field(False, title="Verbose", description="Print the builder log.")
    tensorrt: TensorRTConfig = spec_field(
        TensorRTConfig(), title="TensorRT", automl_enabled=False, popular=True,
        description="Builder settings and batch profile.")
