"""Learning curve: held-out mAP@50 against training minutes, our trainer against the peer.

On the built-in synthetic dataset (generated here, or ``--data``), for the same number of
training minutes on the same machine, one after the other:

* OURS: the real ``train`` action (Lightning engine, TAO checkpoints and logs) with a spec
  file (``--spec``; the main job's preset ``presets/quickstart.yaml`` when omitted) whose data sources are
  pointed at the synthetic train split. A callback evaluates the held-out val split every
  ``--eval-every`` training minutes (bbox and segm mAP@50, our COCO evaluator on the model's
  post-processed detections) and stops training when ``--minutes`` are used.
* PEER: transformers' ``GroundingDinoForObjectDetection`` in a plain loop (``peer.py``: small
  configuration, ResNet from random init, width 128, 2+2 layers, 100 queries, MiniLM frozen
  with its phrase features cached), AdamW (``--peer-lr``, one run per value), batch 8,
  gradient clipping 0.1, 256x256 images from our loader, its own loss (``labels``);
  evaluated with the same COCO evaluator after turning its token logits into per-class
  scores (``peer_detections``).

Evaluation time is excluded from training minutes; both are recorded. Each run is its own
subprocess. Output (``--out``): ``learning_curve.json``, ``learning_curve.png`` and a table.

    python bench/learning_curve.py --spec my_spec.yaml                 # 15 minutes each
    python bench/learning_curve.py --minutes 2 --eval-every 1         # smoke run
    python bench/learning_curve.py --spec s.yaml --override train.optim.lr=4e-4 --runs ours
    python bench/learning_curve.py --peer-lr 2e-4,4e-4                 # two peer runs
    python bench/learning_curve.py --runs ours,peer --keep-epochs --label "pretrained start" --out lc_pre
    python bench/learning_curve.py --runs ours --keep-epochs --label "random start" --out lc_random \
        --override model.backbone=resnet_tiny --override model.pretrained_backbone_path=
    python bench/learning_curve.py --merge lc_pre lc_random --out lc_both      # all curves in one picture
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

def default_spec() -> dict:
    """Our run without ``--spec``: the main job's CPU preset (``presets/quickstart.yaml``), as
    ``mask_grounding_dino quickstart`` trains it."""
    from mask_grounding_dino.actions.quickstart import preset_spec

    spec = preset_spec()
    spec.pop("quickstart", None)
    return spec


MAP_KEYS = {"bbox": "[bbox] val_mAP@50", "segm": "[segm] val_mAP@50"}


# ----------------------------------------------------------------------------- data
def make_data(folder: str, num_train: int, num_val: int, size: int, seed: int) -> str:
    """The built-in synthetic dataset (train + val, no VG split), generated once per folder."""
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    if not os.path.exists(os.path.join(folder, "val", "annotations.json")):
        generate_synthetic_dataset(folder, SynthConfig(num_train=num_train, num_val=num_val, num_vg=0, width=size,
                                                       height=size, seed=seed))
    return folder


def data_sources(folder: str) -> dict:
    train, val = os.path.join(folder, "train"), os.path.join(folder, "val")
    return {"train_data_sources": [{"image_dir": os.path.join(train, "images.tar.gz"),
                                    "json_file": os.path.join(train, "annotations_odvg.jsonl"),
                                    "label_map": os.path.join(train, "annotations_odvg_labelmap.json")}],
            "val_data_sources": {"image_dir": os.path.join(val, "images.tar.gz"),
                                 "json_file": os.path.join(val, "annotations.json"), "data_type": "OD"}}


class TrainingClock:
    """Training seconds = wall time since ``start`` minus the excluded (evaluation) intervals."""

    def __init__(self):
        self.started = time.perf_counter()
        self.excluded = 0.0

    def minutes(self) -> float:
        return (time.perf_counter() - self.started - self.excluded) / 60.0

    def exclude(self, seconds: float) -> None:
        self.excluded += seconds


class EvalSchedule:
    """Evaluate at 0, every ``every`` training minutes, and once more at the end."""

    def __init__(self, every: float, budget: float):
        self.every, self.budget, self.next = float(every), float(budget), 0.0

    def due(self, minutes: float) -> bool:
        return minutes >= self.next

    def advance(self, minutes: float) -> None:
        while self.next <= minutes:
            self.next += self.every


def point(minutes: float, steps: int, images: int, eval_s: float, metrics: dict[str, float]) -> dict:
    return {"train_minutes": round(minutes, 4), "steps": steps, "images": images, "eval_seconds": round(eval_s, 2),
            **{f"{k}_mAP50": metrics.get(v) for k, v in MAP_KEYS.items()},
            "bbox_mAP": metrics.get("[bbox] val_mAP@50-95")}


# ----------------------------------------------------------------------------- ours
def our_spec(args, forced: dict):
    """``--spec`` (or the quickstart preset), then ``--override KEY=VALUE`` items, then ``forced`` keys."""
    import yaml

    from mask_grounding_dino.config import load_spec

    overrides = {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--override {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    overrides.update(forced)
    return load_spec(args.spec, overrides=overrides, base=None if args.spec else default_spec())


def run_ours(args) -> dict:
    """The train action with a callback that evaluates on schedule and stops on the budget."""
    import lightning.pytorch as pl
    import torch

    from mask_grounding_dino.actions import train
    from mask_grounding_dino.engine.data import eval_loader
    from mask_grounding_dino.engine.evaluation import EvalRunner
    from mask_grounding_dino.model.postprocess import PostProcessor

    torch.set_num_threads(args.threads)
    sources = data_sources(args.data)
    forced = {"dataset.train_data_sources": sources["train_data_sources"],
              "results_dir": os.path.join(args.out, "ours"), "train.results_dir": "",
              # No val data for the action: Lightning's own validation never runs, the callback
              # below is the only evaluation (and its time is excluded from training minutes).
              "dataset.val_data_sources": {"image_dir": "", "json_file": "", "data_type": "OD"},
              # best checkpoints rank Lightning's validation, which this run has none of
              "train.checkpointer.enable_topk": False}
    if not args.keep_epochs:
        forced["train.num_epochs"] = 100_000       # the clock ends the run, not the epoch count
    cfg = our_spec(args, forced)
    val_cfg = our_spec(args, {**forced, "dataset.val_data_sources": sources["val_data_sources"]})

    class Curve(pl.Callback):
        def __init__(self):
            self.points: list[dict] = []
            self.clock: TrainingClock | None = None
            self.schedule = EvalSchedule(args.eval_every, args.minutes)
            self.images = 0
            self.loader = self.runner = None

        def on_train_start(self, trainer, pl_module):
            self.loader, info = eval_loader(val_cfg, "val", pl_module.text_processor)
            post = PostProcessor.from_config(val_cfg.model, val_cfg.evaluate, data_type="OD")
            self.runner = EvalRunner(postprocessor=post, text_processor=pl_module.text_processor, data_type="OD",
                                     categories=info["categories"], coco_gt=info["coco_gt"])
            self.clock = TrainingClock()
            self.evaluate(trainer, pl_module)

        @torch.no_grad()
        def evaluate(self, trainer, pl_module):
            started = time.perf_counter()
            minutes = self.clock.minutes()
            pl_module.eval()
            self.runner.reset()
            for batch in self.loader:
                batch = batch.to(pl_module.device)
                self.runner.update(pl_module(batch), batch)
            keys, _ = self.runner.compute("val")
            pl_module.train()
            seconds = time.perf_counter() - started
            self.clock.exclude(seconds)
            self.points.append(point(minutes, trainer.global_step, self.images, seconds, keys))
            self.schedule.advance(minutes)
            print(f"[ours] {minutes:6.2f} min  step {trainer.global_step:6d}  bbox mAP@50 "
                  f"{keys[MAP_KEYS['bbox']]:.4f}  segm {keys.get(MAP_KEYS['segm'], float('nan')):.4f}  "
                  f"(eval {seconds:.0f} s)", file=sys.stderr, flush=True)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.images += len(batch)
            minutes = self.clock.minutes()
            if minutes >= args.minutes:
                trainer.should_stop = True
                return
            if self.schedule.due(minutes):
                self.evaluate(trainer, pl_module)

        def on_train_end(self, trainer, pl_module):
            self.evaluate(trainer, pl_module)          # the final point, at the budget

    curve = Curve()
    wall = time.perf_counter()
    train.run(cfg, progress_bar=False, callbacks=[curve])
    label = args.label or f"ours ({os.path.basename(args.spec) if args.spec else 'quickstart preset'})"
    return {"name": "ours", "label": label,
            "spec": args.spec, "overrides": args.override, "points": curve.points,
            "wall_seconds": time.perf_counter() - wall, "batch_size": int(cfg.dataset.batch_size),
            "lr": float(cfg.train.optim.lr)}


# ----------------------------------------------------------------------------- peer
def peer_spec(args) -> dict:
    """Loader settings for the peer: 256x256 (``--peer-size``), flips, no crop, batch 8."""
    size = args.peer_size
    return {"model": {"text_encoder_type": "minilm"},
            "dataset": {**data_sources(args.data), "batch_size": args.peer_batch, "workers": 1, "has_mask": False,
                        "augmentation": {"scales": [size], "train_random_resize": [size],
                                         "train_random_crop_min": 1000, "train_random_crop_max": 1333,
                                         "random_resize_max_size": size, "test_random_resize": size,
                                         "fixed_padding": False}},
            "train": {"seed": 1234}}


def run_peer(args, lr: float) -> dict:
    import torch

    from mask_grounding_dino.config import load_spec
    from mask_grounding_dino.engine.data import eval_loader, train_loader
    from mask_grounding_dino.metrics import CocoEvaluator
    from mask_grounding_dino.model.postprocess import PromptLayout
    from mask_grounding_dino.text import TextProcessor
    from peer import build_peer, check_phrase_groups, peer_detections, peer_inputs, peer_labels, set_train_mode

    torch.set_num_threads(args.threads)
    cfg = load_spec(base=peer_spec(args))
    tp = TextProcessor("minilm", cfg.model.max_text_len)
    train = train_loader(cfg, tp)
    val, info = eval_loader(cfg, "val", tp)
    evaluator = CocoEvaluator(info["coco_gt"], list(info["categories"]))
    layout = PromptLayout.from_phrases(list(info["categories"].values()), tp)
    model = build_peer(text_cache=True, seed=int(cfg.train.seed))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    clock, schedule = TrainingClock(), EvalSchedule(args.eval_every, args.minutes)
    points, steps, images = [], 0, 0

    @torch.no_grad()
    def evaluate():
        started = time.perf_counter()
        minutes = clock.minutes()
        model.eval()
        evaluator.reset()
        for batch in val:
            out = model(**peer_inputs(batch))
            dets = peer_detections(out.logits, out.pred_boxes, [layout.phrase_map] * len(batch),
                                   [t.orig_size for t in batch.targets], num_select=args.peer_num_select)
            evaluator.update([t.image_id for t in batch.targets], dets)
        keys = evaluator.compute().key_metrics("val")
        set_train_mode(model)
        seconds = time.perf_counter() - started
        clock.exclude(seconds)
        points.append(point(minutes, steps, images, seconds, keys))
        schedule.advance(minutes)
        print(f"[peer lr {lr:g}] {minutes:6.2f} min  step {steps:6d}  bbox mAP@50 {keys[MAP_KEYS['bbox']]:.4f}  "
              f"(eval {seconds:.0f} s)", file=sys.stderr, flush=True)

    wall = time.perf_counter()
    evaluate()
    set_train_mode(model)
    epoch, done, checked = 0, False, False
    losses = []
    while not done:
        train.resumable_sampler.set_epoch(epoch)          # a new order (and augmentation) per epoch
        for batch in train:
            if not checked:
                check_phrase_groups(batch)
                checked = True
            out = model(**peer_inputs(batch), labels=peer_labels(batch))
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.1)
            optimizer.step()
            steps, images = steps + 1, images + len(batch)
            losses.append(float(out.loss.detach()))
            minutes = clock.minutes()
            if minutes >= args.minutes:
                done = True
                break
            if schedule.due(minutes):
                evaluate()
        epoch += 1
    evaluate()
    return {"name": f"peer_lr{lr:g}", "label": f"peer (transformers, lr {lr:g})", "points": points,
            "wall_seconds": time.perf_counter() - wall, "batch_size": args.peer_batch, "lr": lr,
            "loss_first_last": [losses[0], losses[-1]] if losses else None}


# ----------------------------------------------------------------------------- report
def table(runs: list[dict]) -> str:
    lines = ["| run | train min | steps | images | bbox mAP@50 | segm mAP@50 | eval s |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        for p in run["points"]:
            segm = "-" if p.get("segm_mAP50") is None else f"{p['segm_mAP50']:.4f}"
            lines.append(f"| {run['label']} | {p['train_minutes']:.2f} | {p['steps']} | {p['images']} | "
                         f"{p['bbox_mAP50']:.4f} | {segm} | {p['eval_seconds']:.0f} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        xs = [p["train_minutes"] for p in run["points"]]
        line, = ax.plot(xs, [p["bbox_mAP50"] for p in run["points"]], marker="o", label=f"{run['label']}: bbox")
        if any(p.get("segm_mAP50") is not None for p in run["points"]):
            ax.plot(xs, [p.get("segm_mAP50") for p in run["points"]], marker="s", linestyle="--",
                    color=line.get_color(), label=f"{run['label']}: segm")
    ax.set_xlabel("training minutes (evaluation excluded)")
    ax.set_ylabel("held-out mAP@50")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- driver
def worker_command(args, run: str) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", run, "--data", args.data, "--out", args.out,
           "--minutes", str(args.minutes), "--eval-every", str(args.eval_every), "--threads", str(args.threads),
           "--peer-batch", str(args.peer_batch), "--peer-size", str(args.peer_size),
           "--peer-num-select", str(args.peer_num_select)]
    if args.spec:
        cmd += ["--spec", args.spec]
    for item in args.override:
        cmd += ["--override", item]
    if args.keep_epochs:
        cmd.append("--keep-epochs")
    if args.label:
        cmd += ["--label", args.label]
    return cmd


def merge(args) -> int:
    """One picture and table from several earlier outputs (``--merge``): e.g. two starts of our model."""
    runs, loads = [], []
    for folder in args.merge:
        with open(os.path.join(folder, "learning_curve.json"), encoding="utf-8") as handle:
            summary = json.load(handle)
        runs.extend(summary["runs"])
        loads.append(summary["load_before"][0])
    os.makedirs(args.out, exist_ok=True)
    title = (f"held-out mAP@50 vs training minutes ({len(args.merge)} runs of this script, "
             f"load {min(loads):.1f}-{max(loads):.1f})")
    plot(runs, os.path.join(args.out, "learning_curve.png"), title)
    with open(os.path.join(args.out, "learning_curve.json"), "w", encoding="utf-8") as handle:
        json.dump({"merged": [os.path.abspath(f) for f in args.merge], "load_before": [min(loads)], "runs": runs},
                  handle, indent=2)
    print(table(runs))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="our training spec (YAML); default: the quickstart preset")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for our run (repeatable), e.g. train.optim.lr=4e-4")
    parser.add_argument("--keep-epochs", action="store_true",
                        help="keep the spec's train.num_epochs (default: the time budget alone ends the run)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes per run")
    parser.add_argument("--eval-every", type=float, default=3.0, help="training minutes between evaluations")
    parser.add_argument("--runs", default="ours,peer", help="ours, peer or both")
    parser.add_argument("--peer-lr", default="4e-4", help="comma-separated peer learning rates (one run each)")
    parser.add_argument("--peer-batch", type=int, default=8)
    parser.add_argument("--peer-size", type=int, default=256)
    parser.add_argument("--peer-num-select", type=int, default=100, help="peer detections kept per image")
    parser.add_argument("--num-train", type=int, default=800, help="synthetic training images")
    parser.add_argument("--num-val", type=int, default=200, help="synthetic held-out images")
    parser.add_argument("--image-size", type=int, default=256, help="synthetic image side")
    parser.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    parser.add_argument("--data", help="synthetic dataset folder (generated when missing; default <out>/data)")
    parser.add_argument("--out", default="learning_curve_out", help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--label", help="legend label of our run (default: 'ours (<spec>)')")
    parser.add_argument("--merge", nargs="+", metavar="OUT",
                        help="train nothing: plot the runs of these earlier --out folders in one picture")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    args.out = os.path.abspath(args.out)
    args.spec = os.path.abspath(args.spec) if args.spec else None

    if args.worker:
        result = run_ours(args) if args.worker == "ours" else run_peer(args, float(args.worker.split(":", 1)[1]))
        with open(os.path.join(args.out, f"run_{result['name']}.json"), "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        return 0

    os.makedirs(args.out, exist_ok=True)
    args.data = os.path.abspath(args.data or os.path.join(args.out, "data"))
    started = time.perf_counter()
    make_data(args.data, args.num_train, args.num_val, args.image_size, args.seed)
    print(f"data: {args.data} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    load_before = os.getloadavg()
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    workers = (["ours"] if "ours" in names else []) + \
        ([f"peer:{lr.strip()}" for lr in args.peer_lr.split(",") if lr.strip()] if "peer" in names else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    runs = []
    for name in workers:
        print(f"[{name}] training for {args.minutes:g} minutes ...", file=sys.stderr, flush=True)
        done = subprocess.run(worker_command(args, name), env=env)
        if done.returncode != 0:
            print(f"[{name}] failed with exit code {done.returncode}", file=sys.stderr)
            continue
        result_name = "ours" if name == "ours" else f"peer_lr{float(name.split(':')[1]):g}"
        with open(os.path.join(args.out, f"run_{result_name}.json"), encoding="utf-8") as handle:
            runs.append(json.load(handle))
    load_after = os.getloadavg()
    from bench_train import code_state
    summary = {"code": code_state(), "minutes": args.minutes, "eval_every": args.eval_every, "threads": args.threads, "data": args.data,
               "num_train": args.num_train, "num_val": args.num_val, "load_before": load_before,
               "load_after": load_after, "runs": runs}
    with open(os.path.join(args.out, "learning_curve.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    title = (f"held-out mAP@50 vs training minutes ({args.num_train} synthetic images, {args.threads} threads, "
             f"load {load_before[0]:.1f})")
    if runs:
        plot(runs, os.path.join(args.out, "learning_curve.png"), title)
    print(table(runs))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; code {summary['code']}; "
          f"outputs in {args.out}")
    return 0 if len(runs) == len(workers) else 1


if __name__ == "__main__":
    sys.exit(main())
