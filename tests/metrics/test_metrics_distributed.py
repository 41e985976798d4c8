"""Evaluators across 2 CPU processes (gloo): same numbers as one process, repeated samples counted once."""

import json
import os
import pickle
import socket

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from _coco_synthetic import LABEL_TO_CATEGORY, make_gt, make_predictions

from mask_grounding_dino.metrics import CocoEvaluator, ReferringEvaluator

# pycocotools' decode trips a numpy 2 DeprecationWarning (its own code, harmless).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _referring_samples():
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        gt = rng.random((6, 6)) > 0.5 if i % 3 else None
        pred = rng.random((2, 6, 6)) > 0.5
        samples.append((i, pred, rng.random(2), gt))
    return samples


def _worker(rank: int, world: int, port: int, gt_path: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        preds = make_predictions(json.load(open(gt_path)))
        ids = sorted(preds)
        # Shard like a padded distributed sampler: rank 1 repeats rank 0's first image.
        mine = ids[rank::world] + ([ids[0]] if rank == 1 else [])
        coco = CocoEvaluator(gt_path, LABEL_TO_CATEGORY)
        coco.update(mine, [preds[i] for i in mine])
        ref = ReferringEvaluator()
        samples = _referring_samples()
        for key, pred, scores, gt in samples[rank::world] + ([samples[0]] if rank == 1 else []):
            ref.update_sample(pred, scores, gt, gt_empty=gt is None, key=key)
        result = (coco.compute().stats, ref.compute().key_metrics())
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    gt = make_gt()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    mp.spawn(_worker, args=(2, _free_port(), str(gt_path), str(tmp_path)), nprocs=2, join=True)

    preds = make_predictions(gt)
    single = CocoEvaluator(gt_path, LABEL_TO_CATEGORY)
    single.update(sorted(preds), [preds[i] for i in sorted(preds)])
    ref = ReferringEvaluator()
    for key, pred, scores, g in _referring_samples():
        ref.update_sample(pred, scores, g, gt_empty=g is None, key=key)
    expected = (single.compute().stats, ref.compute().key_metrics())
    for rank in (0, 1):                     # every rank gets rank 0's numbers
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            assert pickle.load(f) == expected
