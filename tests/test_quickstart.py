"""A short version of the README's main job: it learns (loss goes down, held-out mAP rises
above the untrained model's, measured in the same test) and writes everything it promises; a
rerun keeps what the training run recorded, a train run pointed elsewhere leaves the folder
untouched, and quickstart deletes or writes into no folder it did not create."""

import hashlib
import json
import os

import pytest
import torch
import yaml

from mask_grounding_dino.actions.quickstart import MARKER, _prepare_out
from mask_grounding_dino.cli import main
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.data import eval_loader
from mask_grounding_dino.engine.history import read_jsonl
from mask_grounding_dino.engine.module import GroundingModule

#: A small model and small images so the run takes about a minute on 2 CPU cores.
SHORT = ["--num-images", "64", "--num-val", "24", "--image-size", "128", "--colors", "red,blue",
         "--shapes", "circle,square", "--selectivity-images", "6", "--epochs", "10",
         "model.hidden_dim=64", "model.dim_feedforward=256", "model.nheads=4", "model.enc_layers=1",
         "model.dec_layers=2", "model.num_queries=20", "model.dn_number=8", "dataset.batch_size=4",
         "dataset.workers=0", "dataset.augmentation.scales=[112,128]",
         "dataset.augmentation.train_random_resize=[96,112]", "dataset.augmentation.train_random_crop_min=80",
         "dataset.augmentation.train_random_crop_max=112", "dataset.augmentation.random_resize_max_size=128",
         "dataset.augmentation.test_random_resize=128", "train.optim.lr=0.001", "train.optim.lr_backbone=0.001",
         "train.optim.warmup_steps=10", "train.optim.lr_steps=[9]",
         "train.validation_interval=100", "train.checkpoint_interval=100"]


def _untrained_map(spec_path: str) -> float:
    cfg = load_spec(spec_path)
    torch.manual_seed(cfg.train.seed)
    module = GroundingModule(spec_to_dict(cfg)).eval()
    loader, info = eval_loader(cfg, "test", module.text_processor)
    module.eval_data = info
    runner = module._eval_runner()
    with torch.no_grad():
        for batch in loader:
            runner.update(module(batch), batch)
    keys, _ = runner.compute("test")
    return float(keys["[bbox] test_mAP@50"])


@pytest.mark.slow
def test_short_quickstart_learns_and_writes_its_outputs(tmp_path):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), *SHORT]) == 0

    summary = json.loads((out / "quickstart_summary.json").read_text())
    trained = summary["metrics"]["[bbox] test_mAP@50"]
    untrained = _untrained_map(str(out / "spec.yaml"))
    losses = [row["train_loss"] for row in read_jsonl(str(out / "train" / "history.jsonl")) if "train_loss" in row]
    assert len(losses) >= 4
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.8 * first, losses                         # the loss goes down
    # Held-out mAP@50 well above the untrained model's (which is ~0 on this data).
    assert trained > untrained + 0.1, (trained, untrained)

    for path in ("spec.yaml", "train/plots/loss.png", "train/status.json", "evaluate/latest_results.json",
                 "inference/results.json", "inference/labels"):
        assert (out / path).exists(), path
    assert len(os.listdir(out / "inference" / "images_annotated")) == 12
    assert {r["category"] for r in summary["selectivity"]} == {"red circle", "red square", "blue circle",
                                                               "blue square"}


def _hashes(folder) -> dict[str, str]:
    """Relative path -> sha256 (links: their target) of every file under ``folder``."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                found[os.path.relpath(path, folder)] = "link -> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.mark.slow
def test_rerun_and_a_train_run_elsewhere_keep_the_quickstart_run(tmp_path, capsys):
    """The spec quickstart writes sets only results_dir (no action folder pinned). A rerun that
    trains nothing keeps the summary of the run that trained (it was overwritten with this
    run's figures), and the README's ``train -e <out>/spec.yaml results_dir=<other>
    train.num_epochs=1`` trains in ``<other>/train`` and leaves ``<out>`` byte-identical."""
    out = tmp_path / "qs"
    short = list(SHORT)
    short[short.index("--epochs") + 1] = "2"  # 2 epochs instead of 10: only the folders matter here
    assert main(["quickstart", "--out", str(out), *short]) == 0
    spec = yaml.safe_load((out / "spec.yaml").read_text())
    assert spec["results_dir"] == str(out)
    assert [spec[a]["results_dir"] for a in ("train", "evaluate", "inference")] == ["", "", ""]
    first = json.loads((out / "quickstart_summary.json").read_text())
    assert first["trained_steps"] == 32 and first["train_time_s"] > 0  # 64 images / batch 4 x 2 epochs
    capsys.readouterr()

    assert main(["quickstart", "--out", str(out), *short]) == 0
    assert "nothing left to train" in capsys.readouterr().out
    again = json.loads((out / "quickstart_summary.json").read_text())
    assert {k: again[k] for k in first} == first
    assert again["last_rerun"]["trained_steps"] == 0

    before = _hashes(out)
    other = tmp_path / "exp1"
    assert main(["train", "-e", str(out / "spec.yaml"), f"results_dir={other}", "train.num_epochs=1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"train: writing to {other / 'train'} (new folder)"
    assert (other / "train" / "mask_gdino_model_latest.pth").is_file()
    assert _hashes(out) == before


def test_fresh_refuses_a_folder_quickstart_did_not_create(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    before = _hashes(home)
    for args, reason in ((["--fresh"], "--fresh deletes only a folder quickstart created"),
                         ([], "the folder is not empty and was not created by quickstart")):
        assert main(["quickstart", "--out", str(home), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: --out {home}: {reason}"), err
        assert _hashes(home) == before and sorted(os.listdir(home)) == ["notes.txt", "photos"]


def test_fresh_deletes_a_folder_quickstart_created(tmp_path):
    out = tmp_path / "qs"
    _prepare_out(str(out), fresh=False)
    assert os.listdir(out) == [MARKER]
    (out / "train").mkdir()
    (out / "train" / "status.json").write_text("{}")
    _prepare_out(str(out), fresh=False)  # a rerun keeps everything
    assert sorted(os.listdir(out)) == sorted([MARKER, "train"])
    _prepare_out(str(out), fresh=True)
    assert os.listdir(out) == [MARKER]
