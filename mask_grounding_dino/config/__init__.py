"""Experiment specs: typed sections with TAO's keys, loading, validation and schemas.

Import-light on purpose (no torch): ``from mask_grounding_dino.config import
ExperimentConfig, ModelConfig, load_spec``.
"""

from .dataset import (AugmentationConfig, DatasetConfig, EvalDataSource, InferDataSource,
                      TrainDataSource)
from .deploy import (EvaluateConfig, ExportConfig, GenTrtEngineConfig, InferenceConfig,
                     TensorRTConfig)
from .experiment import ACTIONS, ExperimentConfig, WandbConfig
from .fields import INF, MISSING, FieldInfo, spec_field
from .loader import dump_spec, load_spec, save_spec, spec_to_dict
from .model import BACKBONES, ModelConfig
from .quantize import QuantizeConfig, QuantLayerConfig, QuantTensorConfig
from .train import CheckpointerConfig, CudnnConfig, OptimConfig, TrainConfig
from .validate import get_value, is_unset, require

__all__ = [
    "ACTIONS", "BACKBONES", "INF", "MISSING",
    "AugmentationConfig", "CheckpointerConfig", "CudnnConfig", "DatasetConfig", "EvalDataSource", "EvaluateConfig",
    "ExperimentConfig", "ExportConfig", "FieldInfo", "GenTrtEngineConfig", "InferDataSource",
    "InferenceConfig", "ModelConfig", "OptimConfig", "QuantLayerConfig", "QuantTensorConfig",
    "QuantizeConfig", "TensorRTConfig", "TrainConfig", "TrainDataSource", "WandbConfig",
    "dump_spec", "get_value", "is_unset", "load_spec", "require", "save_spec", "spec_field", "spec_to_dict",
]
