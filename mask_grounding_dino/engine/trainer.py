"""A Lightning Trainer from the spec: devices, nodes, strategy, precision, logging.

GPU keys (``num_gpus``, ``gpu_ids``, ``num_nodes``) are TAO's. Without CUDA the
same spec runs on the CPU with ``num_gpus`` processes (DDP over gloo when > 1),
so a laptop, one GPU and a multi-node cluster (torchrun / SLURM environments,
which Lightning detects) all use one spec.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from ..errors import SpecError
from .checkpoint_io import AtomicCheckpointIO
from .csv_log import AppendingCSVLogger
from .determinism import DeterministicCpu

log = logging.getLogger(__name__)


#: Lightning warnings nobody running our training can act on (regular expressions).
_LIGHTNING_NOISE = (
    # Lightning 2.6 on torch 2.14: a deprecation inside Lightning itself.
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
    # Frozen parts (train.freeze) are kept in eval mode on purpose (engine/module.py).
    r"Found \d+ module\(s\) in eval mode at the start of training",
)


class _DropAdvert(logging.Filter):
    """Lightning prints an advert for its cloud logger at every start; keep logs to what matters."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Inside the block (building the trainer and training), Lightning's cloud-logger advert and
    :data:`_LIGHTNING_NOISE` are dropped; afterwards the process's warning filters and
    Lightning's logger are as they were (the caller's code may want those messages)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    advert = _DropAdvert()
    logger.addFilter(advert)
    try:
        with warnings.catch_warnings():
            for message in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        logger.removeFilter(advert)

PRECISION = {"fp32": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}


def _devices(train_cfg, key: str = "train") -> tuple[str, object]:
    num = max(1, int(train_cfg.num_gpus))
    if torch.cuda.is_available():
        # Checked here: Lightning's own error for a missing GPU is a bare MisconfigurationException.
        count = torch.cuda.device_count()
        ids = [int(i) for i in (train_cfg.gpu_ids or [])]
        missing = [i for i in ids[:num] if not 0 <= i < count]
        if missing:
            raise SpecError(f"{key}.gpu_ids: GPU {missing[0]} does not exist; this machine has {count} GPU(s) "
                            f"(0..{count - 1})")
        if ids and len(ids) >= num:
            return "gpu", ids[:num]
        if num > count:
            raise SpecError(f"{key}.num_gpus: {num} GPUs asked for; this machine has {count}. Set "
                            f"{key}.num_gpus={count} or less (num_nodes spreads a run over machines)")
        return "gpu", num
    if num > 1 and os.environ.get("LOCAL_RANK", "0") == "0":  # once, not again in each launched process
        log.info(f"notice: no GPU found; {key}.num_gpus={num} runs {num} CPU processes (DDP over gloo)")
    return "cpu", num


def _strategy(train_cfg, accelerator: str, devices) -> object:
    count = len(devices) if isinstance(devices, list) else int(devices)
    multi = count > 1 or int(train_cfg.num_nodes) > 1
    kind = str(getattr(train_cfg, "distributed_strategy", "ddp")).lower()  # evaluate / inference: always DDP
    if not multi:
        return "auto"
    if kind == "ddp":
        from lightning.pytorch.strategies import DDPStrategy
        # TAO: unused parameters are possible when activation checkpointing is off (training only:
        # prediction runs the model without the DDP wrapper).
        return DDPStrategy(find_unused_parameters=not getattr(train_cfg, "activation_checkpoint", True),
                           process_group_backend="nccl" if accelerator == "gpu" else "gloo")
    if kind == "fsdp":
        if accelerator != "gpu":
            raise SpecError("train.distributed_strategy: fsdp needs GPUs; use ddp on CPU")
        return "fsdp"
    raise SpecError(f"train.distributed_strategy: '{kind}' is not supported; allowed: ddp, fsdp")


def device_settings(section, key: str = "train") -> dict:
    """Lightning's ``accelerator``, ``devices``, ``num_nodes`` and ``strategy`` for a spec section with
    TAO's ``num_gpus`` / ``gpu_ids`` / ``num_nodes`` (``train``, ``evaluate``, ``inference``): GPUs
    when CUDA is there, else ``num_gpus`` CPU processes; DDP (nccl / gloo) when more than one
    process; torchrun and SLURM environments are detected by Lightning. ``key`` names the section
    in notices."""
    accelerator, devices = _devices(section, key)
    return {"accelerator": accelerator, "devices": devices, "num_nodes": int(section.num_nodes),
            "strategy": _strategy(section, accelerator, devices)}


def _precision(train_cfg, accelerator: str, strategy) -> str:
    precision = PRECISION.get(str(train_cfg.precision).lower())
    if precision is None:
        raise SpecError(f"train.precision: '{train_cfg.precision}' is not supported; allowed: fp32, fp16, bf16")
    if strategy == "fsdp":
        precision = "16-mixed"  # TAO forces mixed precision with FSDP
    if accelerator == "cpu" and precision == "16-mixed":
        log.info("notice: fp16 mixed precision needs a GPU; using bf16 mixed precision on the CPU")
        precision = "bf16-mixed"
    return precision


def wandb_logger(cfg, results_dir: str):
    """A WandbLogger when wandb is enabled, installed and has credentials; else None + one notice."""
    wb = cfg.wandb
    if not wb.enable:
        return None
    try:
        import wandb  # noqa: F401
    except ImportError:
        log.info("notice: wandb.enable is true but the wandb package is not installed; logging locally only")
        return None
    offline = os.environ.get("WANDB_MODE") in ("offline", "disabled")
    has_key = bool(os.environ.get("WANDB_API_KEY")) or os.path.exists(os.path.expanduser("~/.netrc"))
    if not (has_key or offline):
        log.info("notice: wandb.enable is true but no wandb credentials were found (WANDB_API_KEY); "
                 "logging locally only")
        return None
    from lightning.pytorch.loggers import WandbLogger
    return WandbLogger(**wandb_arguments(wb, results_dir))


def wandb_arguments(wb, results_dir: str) -> dict:
    """``WandbLogger`` arguments from the ``wandb`` spec section (the keys Lightning does not know,
    ``reinit``, ``sync_tensorboard``, ``save_code``, go on to ``wandb.init``)."""
    return dict(project=wb.project or None, entity=wb.entity or None, group=wb.group or None, name=wb.name or None,
                tags=list(wb.tags or []), id=wb.run_id or None, save_dir=results_dir, resume="allow",
                reinit=bool(wb.reinit), sync_tensorboard=bool(wb.sync_tensorboard), save_code=bool(wb.save_code))


def build_trainer(cfg, results_dir: str, callbacks: list, *, max_epochs: int | None = None,
                  max_steps: int = -1, enable_progress_bar: bool = True) -> pl.Trainer:
    tc = cfg.train
    devices = device_settings(tc)
    accelerator, strategy = devices["accelerator"], devices["strategy"]
    # Both continue in the same folders when a run resumes (new event file; rows appended).
    loggers = [TensorBoardLogger(results_dir, name="tensorboard", version=""),
               AppendingCSVLogger(results_dir, name="csv_logs", version="")]
    wandb = wandb_logger(cfg, results_dir)
    if wandb is not None:
        loggers.append(wandb)
    if accelerator == "gpu":
        torch.backends.cudnn.benchmark = bool(tc.cudnn.benchmark)
        torch.backends.cudnn.deterministic = bool(tc.cudnn.deterministic)
    elif tc.cudnn.deterministic:  # on CPU: bit-identical runs whatever the machine load (engine/determinism.py)
        callbacks = [*callbacks, DeterministicCpu()]
    return pl.Trainer(
        **devices,
        precision=_precision(tc, accelerator, strategy),
        max_epochs=int(max_epochs if max_epochs is not None else tc.num_epochs), max_steps=max_steps,
        gradient_clip_val=float(tc.clip_grad_norm) if tc.clip_grad_norm else None,
        gradient_clip_algorithm="norm",
        check_val_every_n_epoch=max(1, int(tc.validation_interval)),
        num_sanity_val_steps=0, use_distributed_sampler=False, enable_checkpointing=False,
        plugins=[AtomicCheckpointIO()], callbacks=callbacks, logger=loggers,
        default_root_dir=results_dir, log_every_n_steps=10, enable_progress_bar=enable_progress_bar,
        enable_model_summary=False, fast_dev_run=bool(tc.is_dry_run))
