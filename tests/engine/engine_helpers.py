"""Builders shared by the engine and train-action tests: a tiny offline text encoder,
a small synthetic dataset, a tiny training spec, and running the CLI in a subprocess.

Everything is sized for a shared 2-core CPU: 64 px images, a 1-layer 32-wide BERT
(with the real bert-base-uncased vocabulary, so tokenisation is the production one),
a narrow ResNet, 1 encoder / 2 decoder layers, 10 queries.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil
import subprocess
import sys

import lightning.pytorch as pl
import torch
import yaml

# The model's tensors of a training checkpoint, and their SHA-256 (equal <=> bitwise-equal weights).
from mask_grounding_dino.utils.digest import checkpoint_model_weights as model_weights  # noqa: F401
from mask_grounding_dino.utils.digest import tensors_digest as weights_digest  # noqa: F401

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Tokenizer files copied next to the tiny encoder (the bundled MiniLM vocab IS bert-base-uncased).
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_text_encoder(folder: str | os.PathLike, seed: int = 0) -> str:
    """A 1-layer, 32-wide BERT saved with ``save_pretrained`` + the uncased tokenizer.

    Used as ``model.text_encoder_type: <folder>`` (a supported user path). It keeps
    checkpoints at a few MB instead of ~280 MB with MiniLM, so saving every step is cheap.
    """
    from transformers import BertConfig, BertModel

    from mask_grounding_dino.text.tokenizer import bundled_minilm_path

    folder = str(folder)
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=512), add_pooling_layer=True)
    model.save_pretrained(folder)
    source = bundled_minilm_path()
    for name in _TOKENIZER_FILES:
        if os.path.exists(os.path.join(source, name)):
            shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    return folder


def make_dataset(folder: str | os.PathLike, num_train: int = 16, num_val: int = 4, size: int = 64, seed: int = 0):
    """The built-in synthetic dataset (train + val, no VG split) with 1-3 objects per image."""
    from mask_grounding_dino.data.synth import SceneParams, SynthConfig, generate_synthetic_dataset

    scene = SceneParams(min_objects=1, max_objects=3, empty_fraction=0.0, min_size=20.0, max_size=60.0)
    return generate_synthetic_dataset(str(folder), SynthConfig(num_train=num_train, num_val=num_val, num_vg=0,
                                                               width=size, height=size, seed=seed, scene=scene))


def tiny_spec(data_dir: str | os.PathLike, text_encoder: str, results_dir: str | os.PathLike,
              overrides: dict | None = None) -> dict:
    """A complete training spec for the tiny model on ``make_dataset`` data; training writes to
    ``<results_dir>/train`` (see ``train_folder``).

    ``overrides``: dotted keys (``{"train.num_epochs": 1}``) applied on top.
    """
    data = pathlib.Path(data_dir)
    spec = {
        "results_dir": str(results_dir),
        "wandb": {"enable": False},
        "model": {"backbone": "resnet_tiny", "text_encoder_type": str(text_encoder), "hidden_dim": 32, "nheads": 4,
                  "dim_feedforward": 64, "enc_layers": 1, "dec_layers": 2, "num_queries": 10,
                  "num_region_queries": 4, "num_select": 10, "dn_number": 0,
                  # > 0 so every training step draws random numbers: resume must reproduce them
                  "dropout_ratio": 0.1},
        "dataset": {
            "train_data_sources": [{"image_dir": str(data / "train" / "images.tar.gz"),
                                    "json_file": str(data / "train" / "annotations_odvg.jsonl"),
                                    "label_map": str(data / "train" / "annotations_odvg_labelmap.json")}],
            "val_data_sources": {"image_dir": str(data / "val" / "images.tar.gz"),
                                 "json_file": str(data / "val" / "annotations.json"), "data_type": "OD"},
            "batch_size": 4, "workers": 0,
            "augmentation": {"scales": [56, 64], "train_random_resize": [64], "train_random_crop_min": 48,
                             "train_random_crop_max": 64, "random_resize_max_size": 96,
                             "test_random_resize": 64, "fixed_padding": False},
        },
        "train": {"num_epochs": 2, "checkpoint_interval": 1, "checkpoint_interval_unit": "epoch",
                  "activation_checkpoint": False, "seed": 1234},
    }
    for key, value in (overrides or {}).items():
        set_dotted(spec, key, value)
    return spec


#: The reference run: 16 images, batch 4 -> 4 steps per epoch, 2 epochs, a checkpoint every step,
#: and a learning-rate decay after epoch 0 (so a lost or repeated scheduler step changes the weights).
REFERENCE = {"train.checkpoint_interval_unit": "step", "train.checkpoint_interval": 1, "train.optim.lr_steps": [1]}


def set_dotted(spec: dict, key: str, value) -> None:
    node = spec
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = copy.deepcopy(value)


def write_spec(path: str | os.PathLike, spec: dict) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle, sort_keys=False)
    return str(path)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mask_grounding_dino", *args]


def cli_env(**extra: str) -> dict:
    """Subprocess environment: offline, one thread (the machine is shared), CPU only, no wandb."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
                # CPU runs, even on a machine with a GPU: exact equality is a CPU property
                # (grid_sample's CUDA backward accumulates with atomics, so GPU runs are not bitwise repeatable).
                "CUDA_VISIBLE_DEVICES": ""})
    env.pop("WANDB_API_KEY", None)
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=str(REPO_ROOT), env=env or cli_env(), capture_output=True,
                          text=True, timeout=timeout)


class RunRecorder(pl.Callback):
    """Records what this process did and writes it to ``<folder>/rank<r>.json`` at the end.

    Per training batch: epoch, step, image ids, modules in eval mode, and the learning rate
    and size of every parameter group (read before the optimiser step). Per optimiser step:
    the gradient norm before and after clipping. At the end: a digest of the final weights,
    the logged metrics, the precision, and (``keep_initial``) the starting weights in ``initial.pt``.
    """

    def __init__(self, folder: str | os.PathLike, keep_initial: bool = False):
        self.folder = str(folder)
        self.keep_initial = keep_initial
        self.batches: list[dict] = []
        self.grad_norms: list[dict] = []
        self._hook = None

    @staticmethod
    def _grad_norm(pl_module) -> float:
        grads = [p.grad.detach().float() for p in pl_module.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) \
            if grads else 0.0

    def on_train_start(self, trainer, pl_module):
        os.makedirs(self.folder, exist_ok=True)
        if self.keep_initial and trainer.is_global_zero:
            torch.save({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()},
                       os.path.join(self.folder, "initial.pt"))
        optimizer = trainer.optimizers[0]

        def after_step(opt, args, kwargs):  # gradients as the update used them (clipped)
            self.grad_norms[-1]["after_clip"] = self._grad_norm(pl_module)

        self._hook = optimizer.register_step_post_hook(after_step)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # Lightning clips after this hook
        self.grad_norms.append({"step": trainer.global_step, "before_clip": self._grad_norm(pl_module)})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        groups = trainer.optimizers[0].param_groups
        self.batches.append({"epoch": trainer.current_epoch, "step": trainer.global_step,
                             "eval_modules": [n for n, m in pl_module.named_modules() if not m.training],
                             "image_ids": [int(t.image_id) for t in batch.targets],
                             "lr": {g.get("name", str(i)): g["lr"] for i, g in enumerate(groups)},
                             "group_sizes": {g.get("name", str(i)): sum(p.numel() for p in g["params"])
                                             for i, g in enumerate(groups)}})

    def on_train_end(self, trainer, pl_module):
        if self._hook is not None:
            self._hook.remove()
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
                  "batches": self.batches, "grad_norms": self.grad_norms,
                  "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
                  "precision": str(trainer.precision),
                  "weights": weights_digest({f"model.{k}": v for k, v in pl_module.model.state_dict().items()})}
        with open(os.path.join(self.folder, f"rank{trainer.global_rank}.json"), "w", encoding="utf-8") as handle:
            json.dump(record, handle)


def read_record(folder: str | os.PathLike, rank: int = 0) -> dict:
    with open(os.path.join(folder, f"rank{rank}.json"), encoding="utf-8") as handle:
        return json.load(handle)


#: A training script for subprocess runs that need extra callbacks (DDP re-launches it per rank).
TRAIN_SCRIPT = '''
import sys
sys.path.insert(0, {helpers_dir!r})

from engine_helpers import RunRecorder
from mask_grounding_dino.actions import train
from mask_grounding_dino.config import load_spec
from mask_grounding_dino.utils.log import enable_console

if __name__ == "__main__":
    enable_console()  # a program using the library chooses to show its messages, as the CLI does
    sys.exit(train.run(load_spec(sys.argv[1]), progress_bar=False, callbacks=[RunRecorder(sys.argv[2])]))
'''


def write_train_script(path: str | os.PathLike) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(TRAIN_SCRIPT.format(helpers_dir=str(pathlib.Path(__file__).resolve().parent)))
    return str(path)


def train_folder(spec: dict) -> pathlib.Path:
    """Where training writes: ``train.results_dir``, else ``<results_dir>/train`` (TAO's rule)."""
    own = spec.get("train", {}).get("results_dir")
    return pathlib.Path(own) if own else pathlib.Path(spec["results_dir"]) / "train"


def train_in_process(spec: dict, spec_path: str | os.PathLike, *, callbacks: list | None = None,
                     max_steps: int = -1) -> pathlib.Path:
    """Write ``spec`` to ``spec_path`` and run the train action in this process; returns the
    training folder (``train_folder(spec)``)."""
    from mask_grounding_dino.actions import train
    from mask_grounding_dino.config import load_spec

    write_spec(spec_path, spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; one thread also fixes the float summation order
    try:
        code = train.run(load_spec(str(spec_path)), progress_bar=False, callbacks=callbacks, max_steps=max_steps)
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return train_folder(spec)


def checkpoint_files(results_dir: str | os.PathLike) -> list[str]:
    """Names of the TAO-named checkpoints in ``results_dir``, sorted."""
    return sorted(n for n in os.listdir(results_dir) if n.startswith("model_epoch_") and n.endswith(".pth"))


def labels_from_predictions(gt_path, results_path, out_path, per_image: int = 3) -> None:
    """A COCO ground truth whose annotations are each image's ``per_image`` top detections (boxes and
    masks) from ``results_path``: scores well above 0 for any model, so two scoring paths can be
    compared number for number even with a random-weight model."""
    gt = json.loads(pathlib.Path(gt_path).read_text())
    predictions = json.loads(pathlib.Path(results_path).read_text())
    annotations = []
    for image in gt["images"]:
        mine = sorted((p for p in predictions if p["image_id"] == image["id"]), key=lambda p: -p["score"])
        for p in mine[:per_image]:
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": p["category_id"],
                                "bbox": p["bbox"], "area": p["bbox"][2] * p["bbox"][3], "iscrowd": 0,
                                "segmentation": p["segmentation"]})
    pathlib.Path(out_path).write_text(json.dumps({**gt, "annotations": annotations}))
