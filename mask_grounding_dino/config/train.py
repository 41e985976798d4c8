"""``train``: the training run, its optimiser and its schedule."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import INF, spec_field


@dataclass
class CudnnConfig:
    """cuDNN switches (ignored on CPU)."""

    benchmark: bool = spec_field(
        False, title="Autotune kernels", description="Let cuDNN time kernels and keep the fastest (not bitwise "
                                                     "reproducible).")
    deterministic: bool = spec_field(
        True, title="Deterministic kernels", description="Ask cuDNN for deterministic algorithms.")


@dataclass
class OptimConfig:
    """Optimiser, learning rates and schedule."""

    optimizer: str = spec_field(
        "AdamW", title="Optimiser", valid_options=("AdamW", "SGD"),
        description="Update rule for the weights.")
    monitor_name: str = spec_field(
        "val_loss", title="Monitored quantity", valid_options=("val_loss", "train_loss"),
        description="Kept for TAO compatibility, no effect: the MultiStep and StepLR schedules watch no metric "
                    "and checkpoints are kept by train.checkpoint_interval (as in TAO).")
    lr: float = spec_field(
        2e-4, title="Learning rate", valid_min=0.0, valid_max=INF, automl_enabled=True,
        description="Base step size for every parameter outside the backbone and the projections.")
    lr_backbone: float = spec_field(
        2e-5, title="Backbone learning rate", valid_min=0.0, valid_max=INF, automl_enabled=True, popular=True,
        description="Step size for parameters named by model.backbone_names.")
    lr_linear_proj_mult: float = spec_field(
        0.1, title="Projection learning-rate factor", valid_min=0.0, valid_max=INF, automl_enabled=True,
        popular=True,
        description="Factor applied to lr for parameters named by model.linear_proj_names.")
    momentum: float = spec_field(
        0.9, title="Momentum", valid_min=0.0, valid_max=INF, automl_enabled=True, popular=True,
        description="Kept for TAO compatibility, no effect: the optimiser is AdamW (TAO's only one), which has "
                    "no momentum parameter.")
    weight_decay: float = spec_field(
        1e-4, title="Weight decay", valid_min=0.0, valid_max=INF, automl_enabled=True, popular=True,
        description="Decoupled L2 penalty applied at every step.")
    lr_scheduler: str = spec_field(
        "MultiStep", title="Schedule", valid_options=("MultiStep", "StepLR"),
        description="MultiStep decays at the epochs in lr_steps; StepLR decays every lr_step_size epochs.")
    lr_steps: list[int] = spec_field(
        [10], title="Decay epochs", automl_enabled=False,
        description="Epochs after which MultiStep multiplies the learning rate by lr_decay.")
    lr_step_size: int = spec_field(
        10, title="Decay period", valid_min=0, valid_max=INF, automl_enabled=True,
        description="Epochs between decays for StepLR.")
    lr_decay: float = spec_field(
        0.1, title="Decay factor", valid_min=0.0, valid_max=INF, automl_enabled=True,
        description="Factor the learning rate is multiplied by at each decay.")
    warmup_steps: int = spec_field(
        0, title="Warm-up steps", valid_min=0, valid_max=INF,
        description="Optimiser steps over which every learning rate ramps linearly up to its value "
                    "(0: no warm-up, as TAO).")


#: What ``train.checkpointer`` ranks by when ``monitor`` / ``mode`` are unset (the network's default).
DEFAULT_MONITOR = "[bbox] val_mAP@50"
DEFAULT_MONITOR_MODE = "max"


@dataclass
class CheckpointerConfig:
    """Best-checkpoint saving and retention (TAO 7.3's ``train.checkpointer``)."""

    enable_topk: bool = spec_field(
        False, title="Keep best checkpoints",
        description="Also save the checkpoints with the best monitored validation metric (model_best_*.pth).")
    replace_periodic: bool = spec_field(
        False, title="Replace periodic checkpoints",
        description="With enable_topk: keep only the newest periodic checkpoint (what a resume continues "
                    "from) besides the best ones; older periodic checkpoints of this run are deleted.")
    monitor: str | None = spec_field(
        None, title="Monitored metric",
        description=f"Validation metric that ranks checkpoints; unset: {DEFAULT_MONITOR}.")
    mode: str | None = spec_field(
        None, title="Monitor direction", valid_options=("min", "max"),
        description="max keeps the highest values, min the lowest; unset: min for a loss, else max.")
    save_top_k: int = spec_field(
        1, title="Best checkpoints kept", valid_min=1,
        description="How many best checkpoints to keep.")
    filename: str = spec_field(
        "model_best_{epoch:03d}", title="Best-checkpoint name",
        description="File name pattern (without .pth) of best checkpoints; {epoch} and {step} are filled in "
                    "(TAO's 0-based epoch index).")
    dirpath: str | None = spec_field(
        None, title="Best-checkpoint folder",
        description="Folder for best checkpoints; unset: the training results folder.")
    auto_insert_metric_name: bool = spec_field(
        False, title="Name fields in file names",
        description="Write each pattern field as name_value (epoch_003) instead of the value alone.")


@dataclass
class TrainConfig:
    """Devices, duration, checkpoints and optimisation of a training run."""

    num_gpus: int = spec_field(
        1, title="GPUs", valid_min=1, popular=True,
        description="GPUs per node (a machine without a GPU trains on its CPU).")
    gpu_ids: list[int] = spec_field(
        [0], title="GPU indices", automl_enabled=False, popular=True,
        description="Which GPUs of the node to use.")
    num_nodes: int = spec_field(
        1, title="Nodes", valid_min=1, popular=True,
        description="Machines taking part in distributed training.")
    seed: int = spec_field(
        1234, title="Random seed", valid_min=-1, valid_max=INF,
        description="Seed for every random generator; -1 picks a fresh one.")
    cudnn: CudnnConfig = spec_field(
        CudnnConfig(), automl_enabled=False, description="cuDNN determinism and autotuning.")
    num_epochs: int = spec_field(
        10, title="Epochs", valid_min=1, valid_max=INF, popular=True,
        description="Passes over the training data.")
    checkpoint_interval: int = spec_field(
        1, title="Checkpoint interval", valid_min=1, popular=True,
        description="Save a checkpoint every this many epochs (or steps, see checkpoint_interval_unit).")
    checkpoint_interval_unit: str = spec_field(
        "epoch", title="Checkpoint interval unit", valid_options=("epoch", "step"),
        description="Whether checkpoint_interval counts epochs or optimiser steps.")
    checkpointer: CheckpointerConfig = spec_field(
        CheckpointerConfig(), title="Best checkpoints", automl_enabled=False,
        description="Best-checkpoint saving by a validation metric, and how many periodic checkpoints to keep.")
    validation_interval: int = spec_field(
        1, title="Validation interval", valid_min=1, popular=True,
        description="Run validation every this many epochs.")
    resume_training_checkpoint_path: str = spec_field(
        "", title="Resume from",
        description="Checkpoint to continue an interrupted run from; empty resumes from the newest checkpoint "
                    "in the results folder, if any.")
    results_dir: str = spec_field(
        "", title="Training results folder",
        description="Where checkpoints and logs go; empty uses <results_dir>/train.")
    freeze: list[str] = spec_field(
        [], title="Frozen parameters", automl_enabled=False,
        description="Parameter-name prefixes to keep fixed, e.g. backbone.0 or bert.")
    pretrained_model_path: str = spec_field(
        "", title="Initial weights",
        description="Whole-model checkpoint to start fine-tuning from (TAO, official Grounding DINO or "
                    "Hugging Face weights).")
    clip_grad_norm: float = spec_field(
        0.1, title="Gradient clipping", math_cond="> 0.0",
        description="Largest allowed global gradient norm; larger gradients are rescaled.")
    is_dry_run: bool = spec_field(
        False, title="Dry run", description="Run a couple of steps only, to check the setup.")
    optim: OptimConfig = spec_field(
        OptimConfig(), title="Optimiser", automl_enabled=False, popular=True,
        description="Optimiser, learning rates and schedule.")
    precision: str = spec_field(
        "fp32", title="Numeric precision", valid_options=("fp16", "fp32", "bf16"),
        description="fp32, or mixed precision with fp16 or bf16 activations.")
    distributed_strategy: str = spec_field(
        "ddp", title="Distribution strategy", valid_options=("ddp", "fsdp"),
        description="Data-parallel replicas (ddp) or sharded parameters (fsdp).")
    activation_checkpoint: bool = spec_field(
        True, title="Activation checkpointing",
        description="Recompute activations in the backward pass to save memory.")
