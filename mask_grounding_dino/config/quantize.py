"""``quantize``: post-training quantisation of a trained model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import spec_field

#: Number formats a layer's weights or activations can be quantised to ("native" keeps them).
QUANT_DTYPES = ("int8", "fp8_e4m3fn", "fp8_e5m2", "native")
#: Runtimes ``quantize.target`` can prepare a model for.
QUANT_TARGETS = ("tensorrt", "cpu")


@dataclass
class QuantTensorConfig:
    """How one kind of tensor (weights or activations) of the matched layers is quantised."""

    dtype: str = spec_field(
        "int8", valid_options=QUANT_DTYPES, description="Target number format; native leaves it unchanged.")
    observer_or_fake_quant: str = spec_field(
        "", description="Statistic collector (or fake quantiser) to use; empty lets the backend choose.")
    quant_axis: int | None = spec_field(
        None, description="Channel axis for per-channel scales; unset uses one scale per tensor.")
    kwargs: dict[str, Any] = spec_field({}, description="Extra arguments for the collector.")


@dataclass
class QuantLayerConfig:
    """A rule matching layers by module path or class name (fnmatch patterns)."""

    module_name: str = spec_field(
        "", description="Pattern tried on the module path first, then on the class name (e.g. '*bbox_embed*', "
                        "'Linear').")
    weights: QuantTensorConfig | None = spec_field(
        None, description="Weight quantisation of matched layers; unset leaves weights as they are.")
    activations: QuantTensorConfig | None = spec_field(
        None, description="Activation quantisation of matched layers; unset leaves activations as they are.")


@dataclass
class QuantizeConfig:
    """Backend, mode, calibration algorithm and per-layer rules."""

    backend: str = spec_field(
        "torchao", title="Backend", valid_options=("modelopt.pytorch", "torchao", "modelopt.onnx"),
        description="Library that performs the quantisation.")
    mode: str = spec_field(
        "weight_only_ptq", title="Mode", valid_options=("static_ptq", "weight_only_ptq"),
        description="Weights only, or weights and activations calibrated on sample images.")
    algorithm: str = spec_field(
        "minmax", title="Calibration algorithm",
        valid_options=("minmax", "max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
        description="How ranges are estimated; the awq_* and rtn_dq choices need the ONNX backend.")
    layers: list[QuantLayerConfig] = spec_field(
        [], title="Layer rules", opaque=True, automl_enabled=False,
        description="Per-layer rules; the first rule whose pattern matches a layer applies.")
    skip_names: list[str] = spec_field(
        [], title="Skipped layers", automl_enabled=False,
        description="Patterns of layers left in full precision (same matching as module_name).")
    model_path: str = spec_field(
        "", title="Model", required=True, description="Checkpoint (.pth) to quantise, or .onnx for modelopt.onnx.")
    results_dir: str = spec_field(
        "", title="Results folder", required=True, description="Where the quantised model is written.")
    backend_kwargs: dict[str, Any] = spec_field(
        {}, title="Backend options", automl_enabled=False, description="Extra options passed to the backend.")
    device: str = spec_field(
        "cuda", title="Calibration device", pattern=r"^(cuda|cpu|trt|cuda:[0-9]+)$",
        description="Where calibration runs: cuda, cuda:N, cpu or trt.")
    target: str = spec_field(
        "tensorrt", title="Target runtime", valid_options=QUANT_TARGETS,
        description="Where the quantised model will run. tensorrt: the chosen backend's artefact (TAO's "
                    "behaviour). cpu: static INT8 for onnxruntime on x86 CPUs (QDQ graph, unsigned 8-bit "
                    "activations, signed 8-bit per-channel weights, reduced range), calibrated like static_ptq.")
    num_calibration_images: int = spec_field(
        64, title="Calibration images", valid_min=1,
        description="Images of dataset.quant_calibration_data_sources used for calibration (the first ones).")
    report: bool = spec_field(
        True, title="Before/after report",
        description="Score the model before and after quantisation on dataset.val_data_sources (mAP, latency, "
                    "file size) and write quantize_report.json/.md in results_dir.")
