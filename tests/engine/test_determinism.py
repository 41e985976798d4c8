"""Two CPU trainings with the same seed end with bit-identical weights, however busy the machine.

With two or more intra-op threads, torch's CPU ``index_put_(accumulate=True)`` (the backward
of the mask head's per-pair gather of mask features) adds from all threads with atomic float
additions, in an order set by the threads' timing. Training therefore runs with torch's
deterministic kernels (``train.cudnn.deterministic``, default true; engine/determinism.py).

How often the race changes a sum depends on the gather's size and on the load itself: at the
quickstart preset's size (~30 pairs x 8 channels x 576 cells per call) from none of 9
repeats to 286 of 299 on the busy development machine, and two quickstart runs part after a
few steps. The tiny training runs below are too small for it (they repeat with torch's
default kernels too) and guard the whole set-up (flag on for the fit, seeded data, a busy
machine), while the mask-head test feeds the op a gather large enough that torch's default
kernels differ on every repeat.
"""

from __future__ import annotations

import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch

from engine_helpers import model_weights, weights_digest, write_spec
from mask_grounding_dino.actions import train
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.engine.checkpoints import LATEST_NAME
from mask_grounding_dino.model.mask_head import MaskHead
from mask_grounding_dino.utils.cpu import deterministic_algorithms

#: 16 images, batch 8 -> 2 steps per epoch, 2 epochs, 160 px.
LARGER = {"dataset.batch_size": 8,
          "dataset.augmentation": {"scales": [160], "train_random_resize": [160], "train_random_crop_min": 1000,
                                   "train_random_crop_max": 1333, "random_resize_max_size": 160,
                                   "test_random_resize": 160, "fixed_padding": False},
          "dataset.val_data_sources": {"image_dir": "", "json_file": ""}}


class StepRecord(pl.Callback):
    """Exact loss of every step, and whether torch's deterministic kernels were on."""

    def __init__(self):
        self.losses: list[str] = []
        self.deterministic: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss).hex())
        self.deterministic.append(torch.are_deterministic_algorithms_enabled())


def _train(assets, folder, overrides: dict | None = None, *, busy: bool = False) -> tuple[str, StepRecord]:
    results = folder / "results"
    folder.mkdir(parents=True)
    spec_path = write_spec(folder / "spec.yaml", assets.spec(results, {**LARGER, **(overrides or {})}))
    record = StepRecord()
    threads = torch.get_num_threads()
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    torch.set_num_threads(2)
    try:
        assert train.run(load_spec(spec_path), progress_bar=False, callbacks=[record]) == 0
    finally:
        torch.set_num_threads(threads)
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return weights_digest(model_weights(results / "train" / LATEST_NAME)), record


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_bit_identical_weights(assets, tmp_path):
    quiet_digest, quiet = _train(assets, tmp_path / "quiet")
    busy_digest, busy = _train(assets, tmp_path / "busy", busy=True)
    assert len(quiet.losses) == 4
    assert busy.losses == quiet.losses          # every step's loss, to the last bit
    assert busy_digest == quiet_digest          # every tensor of the final weights
    assert all(quiet.deterministic) and all(busy.deterministic)


def test_deterministic_kernels_are_on_for_the_fit_only(assets, tmp_path):
    """The switch is torch's process-wide flag: the fit turns it on and gives back the caller's setting."""
    assert not torch.are_deterministic_algorithms_enabled()
    _, record = _train(assets, tmp_path / "on", {"train.num_epochs": 1, "train.cudnn.deterministic": True})
    assert record.deterministic == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_false_keeps_torchs_default_kernels(assets, tmp_path):
    _, record = _train(assets, tmp_path / "off", {"train.num_epochs": 1, "train.cudnn.deterministic": False})
    assert record.deterministic == [False, False]


def test_a_failing_fit_gives_back_the_setting(assets, tmp_path):
    """An exception inside the fit (here: from a callback) must not leave the flag switched on."""

    class Boom(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise RuntimeError("boom")

    spec_path = write_spec(tmp_path / "spec.yaml",
                           assets.spec(tmp_path / "results", {**LARGER, "train.num_epochs": 1}))
    with pytest.raises(RuntimeError, match="boom"):
        train.run(load_spec(spec_path), progress_bar=False, callbacks=[Boom()])
    assert not torch.are_deterministic_algorithms_enabled()


def _pair_gather_gradient(seed: int = 0) -> bytes:
    """Exact bytes of d(mask logits of 64 pairs)/d(mask features): 8 images, 8 x 128 x 128
    features, the pairs' images drawn with repeats (several objects per image)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = MaskHead(hidden_dim=32)
    feats = torch.randn(8, head.mask_dim, 128, 128, generator=gen).requires_grad_(True)
    queries = torch.randn(64, 32, generator=gen)
    ref_xy = torch.rand(64, 2, generator=gen) * 1024
    batch_idx = torch.randint(0, 8, (64,), generator=gen)
    head.predict_pairs(feats, queries, ref_xy, batch_idx).square().mean().backward()
    return feats.grad.numpy().tobytes()


def test_the_mask_heads_pair_gather_backward_repeats_bit_for_bit():
    """The op behind the run-to-run differences, with training's setting, on 2 threads.

    (With torch's default kernels, 10 repeats of this gather's backward gave 10 different
    gradients on the 2-core development machine.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with deterministic_algorithms(True):
            first = _pair_gather_gradient()
            repeats = [_pair_gather_gradient() for _ in range(5)]
    finally:
        torch.set_num_threads(threads)
    assert all(r == first for r in repeats)
