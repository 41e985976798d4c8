"""Hugging Face hub ids of whole detectors, resolved through huggingface_hub's cache.

The test fills a hub cache itself, laid out as huggingface_hub lays it out
(``models--<org>--<name>/blobs/<sha256>``, ``snapshots/<rev>/<file>`` links to the blobs,
``refs/main``), from a small random-weight ``save_pretrained`` folder of transformers'
GroundingDinoForObjectDetection. No network: HF_HUB_OFFLINE=1 (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mask_grounding_dino import cli
from mask_grounding_dino.api import Predictor
from mask_grounding_dino.errors import CheckpointError
from mask_grounding_dino.model.checkpoint import load_checkpoint, read_checkpoint

REPO = "test-org/tiny-grounding-dino"
REVISION = "0123456789abcdef0123456789abcdef01234567"
#: Small resizes keep the tiny model fast; conf 0 keeps its (random-weight) detections to compare.
SPEC = {"dataset": {"augmentation": {"test_random_resize": 96, "random_resize_max_size": 128}},
        "inference": {"conf_threshold": 0.0, "input_width": None, "input_height": None}}


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A small GroundingDinoForObjectDetection with random weights, saved with save_pretrained."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    torch.manual_seed(0)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], out_indices=[2, 3, 4]),
        text_config=BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=4, decoder_attention_heads=4, num_queries=10)
    folder = tmp_path_factory.mktemp("hf") / "tiny-grounding-dino"
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    return folder


def fill_hub_cache(cache, folder, repo: str = REPO, revision: str = REVISION):
    """Put ``folder``'s files into ``cache`` the way huggingface_hub stores a downloaded snapshot."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / revision
    (storage / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / path.name)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, hf_folder, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = fill_hub_cache(cache, hf_folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)            # no local folder called "test-org"
    return snapshot


def _pictures(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(2):
        img = rng.integers(0, 60, size=(64, 80, 3), dtype=np.uint8)
        img[10:30, 12:40] = (220, 30, 30)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def test_a_hub_id_reads_as_its_cached_folder(hub_cache, hf_folder):
    raw, local = read_checkpoint(REPO), read_checkpoint(hf_folder)
    assert raw.path == str(hub_cache) and raw.format == local.format == "hf"
    assert raw.model_config == local.model_config
    assert raw.state.keys() == local.state.keys() and all(torch.equal(raw.state[k], local.state[k]) for k in raw.state)


def test_predictor_from_a_hub_id_equals_the_local_folder(hub_cache, hf_folder, tmp_path):
    image = np.asarray(Image.open(_pictures(tmp_path / "pictures") / "img0.png"))
    from_hub = Predictor.from_checkpoint(REPO, device="cpu", spec=SPEC).predict(image, ["red block"])[0]
    from_folder = Predictor.from_checkpoint(hf_folder, device="cpu", spec=SPEC).predict(image, ["red block"])[0]
    assert len(from_hub) > 0 and torch.equal(from_hub.boxes, from_folder.boxes)
    assert torch.equal(from_hub.scores, from_folder.scores)


def test_inference_action_with_a_hub_id_writes_what_the_local_folder_writes(hub_cache, hf_folder, tmp_path):
    pictures = _pictures(tmp_path / "pictures")
    common = [f"dataset.infer_data_sources.image_dir={pictures}", "dataset.infer_data_sources.captions=red block",
              "dataset.workers=0", "dataset.augmentation.test_random_resize=96",
              "dataset.augmentation.random_resize_max_size=128", "inference.input_width=null",
              "inference.input_height=null", "inference.conf_threshold=0.0"]
    for name, model in (("hub", REPO), ("local", hf_folder)):
        assert cli.main(["inference", f"inference.checkpoint={model}",
                         f"inference.results_dir={tmp_path / name}", *common]) == 0
    hub, local = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("hub", "local"))
    assert hub and hub == local


def test_export_and_warm_start_take_a_hub_id(hub_cache):
    from mask_grounding_dino.deploy.loading import load_torch_model
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO

    loaded = load_torch_model(REPO, key="export.checkpoint")      # what export and evaluate load through
    assert loaded.architecture_from == "checkpoint" and loaded.summary.loaded > 0
    # train.pretrained_model_path: the weights go into a model built from the spec.
    model = MaskGroundingDINO(**dict(read_checkpoint(REPO).model_config, load_text_weights=False))
    summary = load_checkpoint(model, REPO)
    assert summary.loaded == loaded.summary.loaded


def test_offline_and_not_cached_is_one_clear_error(hub_cache, capsys):
    args = ["evaluate", "evaluate.checkpoint=test-org/not-downloaded", "dataset.test_data_sources.image_dir=x",
            "dataset.test_data_sources.json_file=y.json"]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: evaluate.checkpoint: 'test-org/not-downloaded' is not a local file or folder, and as a "
                    f"Hugging Face hub id it is not in the hub cache ({hub_cache.parents[2]}); HF_HUB_OFFLINE=1 allows "
                    "the cache only: run once with HF_HUB_OFFLINE unset to download it, or give a folder saved with "
                    "save_pretrained")
    with pytest.raises(CheckpointError, match="^'test-org/not-downloaded' is not a local file or folder"):
        Predictor.from_checkpoint("test-org/not-downloaded")
