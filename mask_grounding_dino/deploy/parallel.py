"""Evaluate and inference on several devices or nodes: the data split over processes, the
results gathered once.

``<action>.num_gpus`` / ``gpu_ids`` / ``num_nodes`` choose the processes as for training
(:func:`~mask_grounding_dino.engine.trainer.device_settings`): DDP over nccl on GPUs, over gloo
in ``num_gpus`` CPU processes without one, torchrun / SLURM environments as Lightning detects
them. More than one process runs the PyTorch backend under a Lightning ``Trainer.predict``;
one process (and the ONNX Runtime backend, always) runs a plain loop. Both hand every batch and
its detections to the same ``handle(batch, detections)``.

Each process runs whole batches of the one-process order (:class:`ShardedBatchSampler`): the
batches are cut into contiguous blocks, one per rank, so no image runs twice or is skipped,
each batch holds the images it holds in a one-process run (same padding, hence the same
detections), and the ranks' results joined in rank order are in the one-process order.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ..data.batch import Batch
from ..metrics.distributed import rank, world_size
from ..model.results import Detections
from ..utils.log import get_logger
from .loading import is_onnx_path
from .tensorrt import is_engine_path

log = get_logger(__name__)

#: Lightning warnings about choices made here on purpose (regular expressions).
_PREDICT_NOISE = (
    r"You are using a custom batch sampler",  # ShardedBatchSampler returns every index, unpadded
    r"predict returned None",                 # the detections go to the action's handler, not to Lightning
    r".*but local rank has zero length",      # fewer batches than processes (allowed above)
)

#: What the action does with each batch: score it (evaluate) or write its files (inference).
BatchHandler = Callable[[Batch, list[Detections]], None]


def parallel_settings(cfg, action: str, path: str) -> dict | None:
    """Lightning's device settings when ``cfg.<action>`` asks for more than one process and the
    model runs in PyTorch; None for one process (the ONNX Runtime backend says so in one line)."""
    section = getattr(cfg, action)
    wanted = max(int(section.num_gpus or 1), 1) * max(int(section.num_nodes or 1), 1)
    if is_engine_path(path):
        return None  # refused when opened (needs TensorRT)
    if is_onnx_path(path):
        if wanted > 1:
            log.info(f"note: the ONNX Runtime backend runs in one process on one device; {action}.num_gpus="
                     f"{section.num_gpus}, {action}.num_nodes={section.num_nodes} are used with .pth checkpoints")
        return None
    from ..engine.trainer import device_settings

    settings = device_settings(section, action)
    return None if settings["strategy"] == "auto" else settings


class ShardedBatchSampler(Sampler[list[int]]):
    """Batches ``[0, B), [B, 2B), ...`` of ``range(num_samples)`` (the last may be short), cut into
    contiguous blocks: rank ``r`` of ``R`` runs block ``r``; when the blocks do not come out even,
    the first ranks run one batch more. Nothing is padded or repeated.

    ``num_replicas`` / ``rank``: default from torch.distributed, read when iterated (the loader
    is built before Lightning starts the process group).
    """

    def __init__(self, num_samples: int, batch_size: int, num_replicas: int | None = None,
                 rank: int | None = None):
        self.num_samples = int(num_samples)
        self.batch_size = max(1, int(batch_size))
        self._num_replicas, self._rank = num_replicas, rank

    @property
    def num_replicas(self) -> int:
        return int(self._num_replicas if self._num_replicas is not None else world_size())

    @property
    def rank(self) -> int:
        return int(self._rank if self._rank is not None else rank())

    @property
    def num_batches(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def block_sizes(self) -> list[int]:
        """Batches per rank, in rank order (they sum to :attr:`num_batches`)."""
        base, extra = divmod(self.num_batches, self.num_replicas)
        return [base + (r < extra) for r in range(self.num_replicas)]

    def _block(self) -> range:
        sizes = self.block_sizes()
        start = sum(sizes[:self.rank])
        return range(start, start + sizes[self.rank])

    def __iter__(self):
        for b in self._block():
            yield list(range(b * self.batch_size, min((b + 1) * self.batch_size, self.num_samples)))

    def __len__(self) -> int:
        return len(self._block())


def _sharded_loader(loader: DataLoader, sampler: ShardedBatchSampler) -> DataLoader:
    """``loader`` with the same dataset, workers and collation, running this rank's block."""
    return DataLoader(loader.dataset, batch_sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      persistent_workers=loader.persistent_workers)


def _bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


class _DetectModule(pl.LightningModule):
    """Runs ``detector`` on each predict batch of this rank and hands the detections to ``handle``.

    The network is registered here, so Lightning puts each rank's replica on the rank's device;
    batches stay where the loader made them (the backend moves the images it runs). Rank 0 draws
    one bar over the whole data set: at its ``k``-th batch, every rank with a ``k``-th batch is
    counted (the ranks run at about the same pace; rank 0's block is the longest).
    """

    def __init__(self, detector, data_type: str, handle: BatchHandler, sampler: ShardedBatchSampler, desc: str,
                 progress_bar: bool):
        super().__init__()
        self.network = detector.backend.model
        self.detector, self.data_type, self.handle, self.sampler = detector, data_type, handle, sampler
        self.desc, self.progress_bar = desc, progress_bar
        self._bar: tqdm | None = None
        self._sizes: list[int] = []
        # Fewer batches than processes leaves the last ranks without one: they wait for the results.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def on_predict_start(self) -> None:
        self.detector.backend.device = self.device
        self._sizes = self.sampler.block_sizes()
        if self.trainer.is_global_zero:
            self._bar = _bar(self.sampler.num_batches, self.desc, self.progress_bar)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    def predict_step(self, batch: Batch, batch_idx: int) -> None:
        self.handle(batch, self.detector.detect_batch(batch, self.data_type))
        if self._bar is not None:
            self._bar.update(sum(size > batch_idx for size in self._sizes))

    def on_predict_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_detector(run_, data_type: str, handle: BatchHandler, *, desc: str, progress_bar: bool = True) -> None:
    """Every batch of ``run_.loader`` through ``run_.detector`` into ``handle``: in this process, or
    data-parallel over the processes of ``run_.devices`` (each process handles its own block)."""
    if run_.devices is None:
        with _bar(len(run_.loader), desc, progress_bar) as bar:
            for batch in run_.loader:
                handle(batch, run_.detector.detect_batch(batch, data_type))
                bar.update(1)
        return
    from ..engine.trainer import quiet_lightning

    sampler = ShardedBatchSampler(len(run_.loader.dataset), int(run_.loader.batch_size or 1))
    module = _DetectModule(run_.detector, data_type, handle, sampler, desc, progress_bar)
    with quiet_lightning(), warnings.catch_warnings():
        for message in _PREDICT_NOISE:
            warnings.filterwarnings("ignore", message=message)
        trainer = pl.Trainer(**run_.devices, precision="32-true", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
        trainer.predict(module, dataloaders=_sharded_loader(run_.loader, sampler), return_predictions=False)
