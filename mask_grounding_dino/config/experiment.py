"""The whole spec: ``ExperimentConfig`` and the actions that read it."""

from __future__ import annotations

from dataclasses import dataclass

from .dataset import DatasetConfig
from .deploy import EvaluateConfig, ExportConfig, GenTrtEngineConfig, InferenceConfig
from .fields import spec_field
from .model import ModelConfig
from .quantize import QuantizeConfig
from .train import TrainConfig

#: Actions of the command line, in TAO's names (each has a schema and a template).
ACTIONS = ("train", "evaluate", "inference", "export", "quantize", "gen_trt_engine")
#: Sections that belong to one action only; an action's schema leaves out the others.
ACTION_SECTIONS = ("evaluate", "inference", "export", "gen_trt_engine")


@dataclass
class WandbConfig:
    """Weights & Biases logging (used only when the wandb package is installed and reachable)."""

    enable: bool = spec_field(True, title="Enable", description="Log metrics to Weights & Biases.")
    project: str = spec_field("TAO Toolkit", title="Project", description="Project the run is filed under.")
    entity: str = spec_field("", title="Entity", description="Team or user owning the project.")
    group: str = spec_field("", title="Group", description="Group that collects related runs.")
    tags: list[str] = spec_field(
        ["tao-toolkit"], title="Tags", automl_enabled=False, description="Labels attached to the run.")
    reinit: bool = spec_field(False, title="Re-initialise", description="Allow several runs in one process.")
    sync_tensorboard: bool = spec_field(
        False, title="Sync TensorBoard", description="Copy TensorBoard logs to the run.")
    save_code: bool = spec_field(False, title="Save code", description="Upload the launching script.")
    name: str = spec_field("TAO Toolkit Training", title="Run name", description="Display name of the run.")
    run_id: str = spec_field("", title="Run id", description="Resume this existing run instead of starting one.")


@dataclass
class ExperimentConfig:
    """An experiment spec: every section every action reads."""

    model_name: str = spec_field("", title="Model name", description="Free-form name of the experiment.")
    encryption_key: str = spec_field(
        "", title="Encryption key",
        description="Kept for TAO compatibility, no effect: model files are plain PyTorch checkpoints, read and "
                    "written unencrypted.")
    results_dir: str = spec_field(
        "", title="Results folder", description="Root folder for every output; each action writes a sub-folder.")
    wandb: WandbConfig = spec_field(WandbConfig(), automl_enabled=False, description="Experiment tracking.")
    model: ModelConfig = spec_field(
        ModelConfig(), automl_enabled=False, description="Network structure, matching costs and loss weights.")
    dataset: DatasetConfig = spec_field(
        DatasetConfig(), automl_enabled=False, description="Data sources, loading and augmentation.")
    train: TrainConfig = spec_field(
        TrainConfig(), automl_enabled=False, description="Training run, optimiser and schedule.")
    evaluate: EvaluateConfig = spec_field(
        EvaluateConfig(), automl_enabled=False, description="Scoring a model on the test source.")
    inference: InferenceConfig = spec_field(
        InferenceConfig(), automl_enabled=False, description="Predicting on new images and drawing results.")
    export: ExportConfig = spec_field(
        ExportConfig(), automl_enabled=False, description="Writing the model as ONNX.")
    gen_trt_engine: GenTrtEngineConfig = spec_field(
        GenTrtEngineConfig(), automl_enabled=False, description="Building a TensorRT engine.")
    quantize: QuantizeConfig = spec_field(
        QuantizeConfig(), automl_enabled=False, required=True, description="Post-training quantisation.")
