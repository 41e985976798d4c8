"""Fixtures for the evaluate / inference / export action tests: a tiny synthetic dataset in
TAO's layout, a tiny random-weight checkpoint in our format, and a spec builder."""

from __future__ import annotations

import pytest
import torch

from mask_grounding_dino.config import load_spec

#: Test images are 64 x 64; the pipeline resizes them to 96 (the tiny preset's stride-64 level then
#: has 2 x 2 cells: a single 64 px image leaves GroupNorm one value per group).
SIDE = 96


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """3 detection images (val: COCO json, label_map.txt, images folder + archive) and 2 VG images."""
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(str(root), SynthConfig(num_train=0, num_val=3, num_vg=2, width=64, height=64,
                                                      extract_images=True, seed=3))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The ``tiny`` preset with random weights, saved in our checkpoint format."""
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.presets import build_preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(build_preset("tiny"), path)
    return path


@pytest.fixture
def make_spec(tmp_path):
    """``make_spec(**overrides)`` -> a loaded spec with small-run settings and ``results_dir`` in tmp."""

    def build(overrides: dict | None = None):
        base = {"results_dir": str(tmp_path / "results"), "dataset.workers": 0, "dataset.batch_size": 2,
                "dataset.augmentation.test_random_resize": SIDE,
                "dataset.augmentation.random_resize_max_size": SIDE + 32}
        return load_spec(overrides={**base, **(overrides or {})})

    return build
