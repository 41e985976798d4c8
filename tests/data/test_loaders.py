"""build_dataloader: every split from a spec, loader options, seeded workers."""

import pytest
import torch

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.data.batch import Batch
from mask_grounding_dino.data.datasets import CocoEvalDataset, InferenceDataset, OdvgDataset, ReferringDataset
from mask_grounding_dino.data.loaders import build_dataloader, build_dataset
from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset
from mask_grounding_dino.errors import SpecError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    generate_synthetic_dataset(str(root), SynthConfig(num_train=6, num_val=3, num_vg=3, seed=8, width=96, height=96))
    return root


def _cfg(root, cache, **extra):
    overrides = {
        "dataset.train_data_sources": [{"image_dir": f"{root}/train/images.tar.gz",
                                        "json_file": f"{root}/train/annotations_odvg.jsonl",
                                        "label_map": f"{root}/train/annotations_odvg_labelmap.json"}],
        "dataset.val_data_sources": {"image_dir": f"{root}/val/images.tar.gz",
                                     "json_file": f"{root}/val/annotations.json", "data_type": "OD"},
        "dataset.test_data_sources": {"image_dir": f"{root}/vg/images.tar.gz",
                                      "json_file": f"{root}/vg/annotations_odvg.jsonl", "data_type": "VG"},
        "dataset.infer_data_sources": {"image_dir": f"{root}/val/images.tar.gz", "data_type": "OD",
                                       "captions": ["red circle", "green square"]},
        "dataset.batch_size": 2, "dataset.workers": 0, "dataset.max_labels": 6,
        "dataset.augmentation.scales": [64, 96], "dataset.augmentation.random_resize_max_size": 128,
        "dataset.augmentation.train_random_resize": [80], "dataset.augmentation.train_random_crop_min": 48,
        "dataset.augmentation.train_random_crop_max": 80, "dataset.augmentation.test_random_resize": 96,
        "dataset.augmentation.fixed_padding": False, "model.max_text_len": 48,
    }
    overrides.update(extra)
    return load_spec(overrides=overrides)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def test_each_split_builds_and_yields_batches(root, cache):
    cfg = _cfg(root, cache, **{"evaluate.batch_size": 3})
    kinds = {"train": OdvgDataset, "val": CocoEvalDataset, "test": ReferringDataset, "infer": InferenceDataset}
    for split, kind in kinds.items():
        loader = build_dataloader(cfg, split, cache_dir=cache)
        assert isinstance(loader.dataset, kind)
        assert loader.pin_memory is (torch.cuda.is_available()) and loader.num_workers == 0
        batch = next(iter(loader))
        assert isinstance(batch, Batch)
        assert batch.images.shape[0] == {"train": 2, "val": 2, "test": 3, "infer": 2}[split]
        assert batch.images.shape[-2] % 32 == 0 and batch.images.shape[-1] % 32 == 0
        assert all(t.positive_map.shape[1] == 48 for t in batch.targets)
    # Training drops the last incomplete batch (TAO); evaluation keeps every sample.
    assert len(build_dataloader(cfg, "train", cache_dir=cache)) == 3
    assert len(build_dataloader(cfg, "val", cache_dir=cache)) == 2


def test_workers_are_seeded_and_persistent(root, cache):
    cfg = _cfg(root, cache, **{"dataset.workers": 1})
    dataset = build_dataset(cfg, "train", cache_dir=cache)
    first = [[t.caption for t in b.targets] for b in build_dataloader(cfg, "train", dataset=dataset, seed=5)]
    again = [[t.caption for t in b.targets] for b in build_dataloader(cfg, "train", dataset=dataset, seed=5)]
    other = [[t.caption for t in b.targets] for b in build_dataloader(cfg, "train", dataset=dataset, seed=6)]
    assert first == again and first != other
    assert build_dataloader(cfg, "val", cache_dir=cache).persistent_workers


def test_custom_sampler_and_missing_sources(root, cache):
    cfg = _cfg(root, cache)
    loader = build_dataloader(cfg, "train", sampler=torch.utils.data.SequentialSampler(range(6)), cache_dir=cache)
    ids = [t.image_id for b in loader for t in b.targets]
    assert ids == [1, 2, 3, 4, 5, 6]
    empty = _cfg(root, cache, **{"dataset.val_data_sources": {"image_dir": "", "json_file": "", "data_type": "OD"}})
    with pytest.raises(SpecError, match="val_data_sources"):
        build_dataset(empty, "val")
