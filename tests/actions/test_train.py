"""The train action: warm start from other checkpoints, and bad data that stops a run early.

(Resume, DDP, checkpoints, logs and spec behaviours are proven in tests/engine/.)
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

import pytest
import torch

# Shared builders live beside the engine tests (the suite runs with --import-mode=importlib).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "engine"))

from engine_helpers import (RunRecorder, make_dataset, make_text_encoder, read_record, tiny_spec,  # noqa: E402
                            train_in_process, write_spec)
from mask_grounding_dino.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def train_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_action")
    make_dataset(root / "data")
    return root / "data", make_text_encoder(root / "text_encoder")


NO_VAL = {"dataset.val_data_sources": {"image_dir": "", "json_file": "", "data_type": "OD"}}


# -- warm start ----------------------------------------------------------------------------------------
def _donor_state(data, text_encoder, tmp_path) -> dict[str, torch.Tensor]:
    """Weights of the same architecture, different from a fresh model's (another seed, then noise)."""
    from mask_grounding_dino.config import load_spec, spec_to_dict
    from mask_grounding_dino.engine.module import GroundingModule

    cfg = load_spec(write_spec(tmp_path / "donor.yaml", tiny_spec(data, text_encoder, tmp_path / "donor")))
    torch.manual_seed(99)
    model = GroundingModule(spec_to_dict(cfg)).model
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _warm_start(data, text_encoder, tmp_path, checkpoint) -> tuple[dict, str]:
    """One dry-run step from ``checkpoint``; returns (weights at the start of training, stdout)."""
    spec = tiny_spec(data, text_encoder, tmp_path / "results",
                     {**NO_VAL, "train.pretrained_model_path": str(checkpoint), "train.is_dry_run": True})
    train_in_process(spec, tmp_path / "spec.yaml", callbacks=[RunRecorder(tmp_path / "record", keep_initial=True)])
    assert read_record(tmp_path / "record")["global_step"] == 1
    return torch.load(tmp_path / "record" / "initial.pt", map_location="cpu", weights_only=True)


def test_warm_start_from_a_tao_checkpoint_by_key_and_shape(train_assets, tmp_path, capsys):
    """A TAO Mask Grounding DINO .pth (``model.model.`` keys) loads by name; a tensor whose shape
    does not fit is skipped and reported, and training goes on."""
    from mask_grounding_dino.model.checkpoint import ours_to_tao

    data, text_encoder = train_assets
    donor = _donor_state(data, text_encoder, tmp_path)
    odd = "transformer.enc_output.weight"
    assert odd in donor
    tao = ours_to_tao({**donor, odd: torch.zeros(3, 3)}, tao_model="mask_grounding_dino")
    torch.save(tao, tmp_path / "tao_mask_gdino.pth")

    initial = _warm_start(data, text_encoder, tmp_path, tmp_path / "tao_mask_gdino.pth")
    out = capsys.readouterr().out
    assert f"from {tmp_path / 'tao_mask_gdino.pth'} (tao format)" in out
    assert "shape mismatch (not loaded): 1" in out and odd in out
    assert not torch.equal(initial[odd], donor[odd]) and initial[odd].shape == donor[odd].shape
    loaded = [k for k in donor if k != odd]
    assert all(torch.equal(initial[k], donor[k]) for k in loaded)


@pytest.mark.parametrize("layout", ["tao", "official"])
def test_a_grounding_dino_checkpoint_initialises_the_mask_model(train_assets, tmp_path, capsys, layout):
    """Without the mask head and region head (a TAO Grounding DINO .pth, or the original
    release's ``{"model": ...}`` saved from DDP), everything else loads and the two heads
    start fresh, said so in the summary."""
    from mask_grounding_dino.model.checkpoint import ours_to_tao

    data, text_encoder = train_assets
    donor = _donor_state(data, text_encoder, tmp_path)
    detector = {k: v for k, v in donor.items() if not k.startswith(("mask_head.", "rela."))}
    assert len(detector) < len(donor)
    if layout == "tao":
        torch.save(ours_to_tao(detector, tao_model="grounding_dino"), tmp_path / "gdino.pth")
    else:
        torch.save({"model": {f"module.{k}": v for k, v in detector.items()}}, tmp_path / "gdino.pth")

    initial = _warm_start(data, text_encoder, tmp_path, tmp_path / "gdino.pth")
    out = capsys.readouterr().out
    assert f"({layout} format)" in out
    assert "new heads, not in the checkpoint" in out and "mask_head" in out and "rela" in out
    assert "missing" not in out  # nothing else was left out
    assert all(torch.equal(initial[k], v) for k, v in detector.items())
    fresh = [k for k in donor if k.startswith("mask_head.") and donor[k].is_floating_point()]
    assert any(not torch.equal(initial[k], donor[k]) for k in fresh)


def test_a_warm_start_without_the_text_encoder_takes_it_from_text_encoder_type(train_assets, tmp_path):
    """The model is built without text weights when a checkpoint follows; a checkpoint without
    ``bert.*`` then gets the pretrained weights of model.text_encoder_type (here a local folder),
    never a random text encoder."""
    from transformers import AutoModel

    data, text_encoder = train_assets
    donor = _donor_state(data, text_encoder, tmp_path)
    torch.save({k: v for k, v in donor.items() if not k.startswith("bert.")}, tmp_path / "detector_only.pth")
    initial = _warm_start(data, text_encoder, tmp_path, tmp_path / "detector_only.pth")
    pretrained = AutoModel.from_pretrained(text_encoder).state_dict()
    text_keys = [k for k in initial if k.startswith("bert.") and not k.startswith("bert.pooler.")]
    assert text_keys and all(torch.equal(initial[k], pretrained[k[len("bert."):]]) for k in text_keys)


def test_training_leaves_the_process_settings_as_they_were(train_assets, tmp_path):
    """Flushing subnormals and muting Lightning's noise hold for the training only: afterwards the
    caller's denormal setting, warning filters and Lightning's logger are as they were."""
    import logging
    import warnings

    from lightning.pytorch.callbacks import Callback

    from mask_grounding_dino.utils.cpu import denormals_flushed

    class FlushSeen(Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, *args):
            self.seen.append(denormals_flushed())

    data, text_encoder = train_assets
    torch.set_flush_denormal(False)
    filters = list(warnings.filters)
    lightning_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger_filters = list(lightning_logger.filters)
    spec = tiny_spec(data, text_encoder, tmp_path / "results", {**NO_VAL, "train.is_dry_run": True})
    recorder = FlushSeen()
    train_in_process(spec, tmp_path / "spec.yaml", callbacks=[recorder])
    assert recorder.seen == [True]          # one dry-run step, with subnormals flushed (utils/cpu.py)
    assert not denormals_flushed()
    assert list(warnings.filters) == filters and lightning_logger.filters == logger_filters


def test_taos_template_gets_the_untrained_region_head_warning_and_the_fixes_silence_it(tao_skill_dir):
    """TAO's train template builds the region head (100 queries) without its loss (no 'rela'),
    while validation filters detections by the head's union mask (ioi_threshold 0.5)."""
    from mask_grounding_dino.actions.train import untrained_region_head
    from mask_grounding_dino.config import load_spec

    template = tao_skill_dir / "references" / "spec_template_train.yaml"
    line = untrained_region_head(load_spec(template))
    assert line is not None and line.startswith("model.num_region_queries is 100 but model.loss_types has no "
                                                "'rela'") and "evaluate.ioi_threshold 0.5" in line, line
    for fix in (["model.loss_types=[labels,boxes,masks,rela]"], ["model.num_region_queries=0"],
                ["evaluate.ioi_threshold=0.0"], ["model.has_mask=false"]):
        assert untrained_region_head(load_spec(template, fix)) is None, fix


def test_training_with_validation_and_an_untrained_region_head_says_so(train_assets, tmp_path, caplog):
    import logging

    data, text_encoder = train_assets
    runs = {}
    for name, losses in (("without", ["labels", "boxes", "masks"]), ("with", ["labels", "boxes", "masks", "rela"])):
        spec = tiny_spec(data, text_encoder, tmp_path / name, {"train.is_dry_run": True, "model.loss_types": losses})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mask_grounding_dino.actions.train"):
            train_in_process(spec, tmp_path / f"{name}.yaml")
        runs[name] = [r.getMessage() for r in caplog.records
                      if r.name == "mask_grounding_dino.actions.train" and r.levelno == logging.WARNING]
    assert len(runs["without"]) == 1 and "has no 'rela'" in runs["without"][0], runs
    assert runs["with"] == [], runs


def test_a_missing_pretrained_model_is_a_user_error(train_assets, tmp_path, capsys):
    data, text_encoder = train_assets
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(data, text_encoder, tmp_path / "results",
                                                        {"train.pretrained_model_path": str(tmp_path / "none.pth")}))
    assert main(["train", "-e", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.pth" in err[0] and "does not exist" in err[0]


# -- bad data stops before the first step ---------------------------------------------------------
def _bad_run(train_assets, tmp_path, capsys, *, overrides=None, mutate=None) -> str:
    """Train on a copy of the data (changed by ``mutate``); expect exit 2 with one error line
    and no training started. Returns the error line."""
    source, text_encoder = train_assets
    data = tmp_path / "data"
    shutil.copytree(source, data)
    if mutate:
        mutate(data)
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(data, text_encoder, results,
                                                        overrides(data) if overrides else None))
    assert main(["train", "-e", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not results.exists(), "nothing may be written before the data is known to be good"
    return err[0]


def _train_source(data, **changes) -> dict:
    source = {"image_dir": str(data / "train" / "images.tar.gz"),
              "json_file": str(data / "train" / "annotations_odvg.jsonl"),
              "label_map": str(data / "train" / "annotations_odvg_labelmap.json")}
    return {"dataset.train_data_sources": [{**source, **{k: str(v) for k, v in changes.items()}}]}


def test_missing_label_map(train_assets, tmp_path, capsys):
    line = _bad_run(train_assets, tmp_path, capsys,
                    overrides=lambda d: _train_source(d, label_map=d / "train" / "labels.json"))
    assert "labels.json" in line and "not found" in line


def test_broken_bbox_on_the_last_odvg_line(train_assets, tmp_path, capsys):
    """The whole annotation file is checked up front: an error on its last line stops the run."""
    def break_last_bbox(data):
        path = data / "train" / "annotations_odvg.jsonl"
        lines = path.read_text().splitlines()
        record = json.loads(lines[-1])
        record["detection"]["instances"][0]["bbox"] = record["detection"]["instances"][0]["bbox"][:3]
        lines[-1] = json.dumps(record)
        path.write_text("\n".join(lines) + "\n")

    line = _bad_run(train_assets, tmp_path, capsys, mutate=break_last_bbox)
    assert "annotations_odvg.jsonl line 16" in line and "detection.instances[0].bbox" in line


def test_missing_image_folder(train_assets, tmp_path, capsys):
    line = _bad_run(train_assets, tmp_path, capsys,
                    overrides=lambda d: _train_source(d, image_dir=d / "train" / "pictures"))
    assert "pictures" in line and "does not exist" in line


def test_missing_validation_annotations(train_assets, tmp_path, capsys):
    line = _bad_run(train_assets, tmp_path, capsys, overrides=lambda d: {"dataset.val_data_sources": {
        "image_dir": str(d / "val" / "images.tar.gz"), "json_file": str(d / "val" / "gt.json"), "data_type": "OD"}})
    assert "gt.json" in line and "not found" in line


def test_results_dir_is_required(train_assets, tmp_path, capsys):
    data, text_encoder = train_assets
    spec = tiny_spec(data, text_encoder, "")
    assert main(["train", "-e", write_spec(tmp_path / "spec.yaml", spec)]) == 2
    assert "results_dir" in capsys.readouterr().err


def test_a_missing_image_file_stops_the_run_with_one_line(train_assets, tmp_path, capsys):
    """An image named by the annotations but absent from image_dir is found when it is first read
    (not before training: see the report); the run stops with one line and a FAILURE status."""
    import tarfile

    source, text_encoder = train_assets
    data = tmp_path / "data"
    shutil.copytree(source, data)
    with tarfile.open(data / "train" / "images.tar.gz") as archive:
        archive.extractall(data / "train", filter="data")
    missing = sorted((data / "train" / "images").iterdir())[0]
    missing.unlink()
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(data, text_encoder, results, {
        **NO_VAL, "train.num_epochs": 1, **_train_source(data, image_dir=data / "train" / "images")}))
    assert main(["train", "-e", spec]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and missing.name in errors[0] and "not found" in errors[0]
    last = json.loads((results / "train" / "status.json").read_text().splitlines()[-1])
    assert last["status"] == "FAILURE" and missing.name in last["message"]
