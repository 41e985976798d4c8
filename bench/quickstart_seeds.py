"""The main job over several seeds: how much do its numbers move with the seed?

For each seed S, one after the other, runs the README's main job in its own process,

    mask_grounding_dino quickstart --seed S --out <out>/seed_S

(full size, the preset's defaults: 800 + 200 generated images, 8 epochs), reads
``<out>/seed_S/quickstart_summary.json`` and prints one row per seed: wall time, training
time, held-out ``[bbox]`` / ``[segm] test_mAP@50``, and the prompt-selectivity precision and
recall (pooled over the categories: right boxes / returned boxes, right boxes / objects),
then the min / median / max of each column, and ``uptime`` before the first and after the
last run. Writes everything to ``<out>/quickstart_seeds.json``; each run's output goes to
``<out>/seed_S.log``.

The seed drives the generated dataset and the training (``train.seed``); with the same seed a
run repeats bit for bit on the same machine whatever its load (CPU training uses torch's
deterministic kernels), so the spread across seeds is the spread a user can expect.

    python bench/quickstart_seeds.py                          # seeds 0,1,2: ~35 min on 2 quiet cores
    python bench/quickstart_seeds.py --seeds 0,1,2,3,4 --out runs/seeds5
    python bench/quickstart_seeds.py --smoke --out /tmp/s     # tiny job: checks the script only
    python bench/quickstart_seeds.py -- --epochs 4 train.optim.lr=0.0004   # extra quickstart arguments
    python bench/quickstart_seeds.py --seeds 2 --out runs/again --compare runs/quickstart_seeds/quickstart_seeds.json

A seed folder that exists already is not touched: the run stops with a message, unless
``--reuse`` takes the summary a finished earlier run left there (its times are that run's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_load import uptime  # noqa: E402

#: A tiny model on 64 px images (about 3 minutes per seed on the shared 2-core machine). Its numbers mean nothing.
SMOKE = ["--num-images", "16", "--num-val", "8", "--image-size", "64", "--colors", "red,blue",
         "--shapes", "circle,square", "--selectivity-images", "2", "--epochs", "1",
         "model.hidden_dim=32", "model.dim_feedforward=64", "model.nheads=4", "model.enc_layers=1",
         "model.dec_layers=1", "model.num_queries=10", "model.dn_number=2", "dataset.batch_size=4",
         "dataset.workers=0", "dataset.augmentation.scales=[64]", "dataset.augmentation.train_random_resize=[64]",
         "dataset.augmentation.train_random_crop_min=48", "dataset.augmentation.train_random_crop_max=64",
         "dataset.augmentation.random_resize_max_size=64", "dataset.augmentation.test_random_resize=64",
         "train.optim.warmup_steps=1", "train.optim.lr_steps=[1]", "train.validation_interval=100"]

#: (column title, key in a row, format)
COLUMNS = [("wall min", "wall_min", "{:.1f}"), ("train min", "train_min", "{:.1f}"),
           ("[bbox] test_mAP@50", "bbox_map50", "{:.3f}"), ("[segm] test_mAP@50", "segm_map50", "{:.3f}"),
           ("selectivity precision", "selectivity_precision", "{:.3f}"),
           ("selectivity recall", "selectivity_recall", "{:.3f}")]


def find_metric(metrics, name: str):
    """``metrics[name]``, also when the evaluation nests its numbers one level down."""
    if isinstance(metrics, dict):
        if name in metrics:
            return float(metrics[name])
        for value in metrics.values():
            found = find_metric(value, name)
            if found is not None:
                return found
    return None


def final_weights_digest(summary: dict) -> str | None:
    """Digest of the model weights in the run's final checkpoint (None when it is gone)."""
    from mask_grounding_dino.utils.digest import checkpoint_model_weights, tensors_digest

    path = summary.get("checkpoint")
    return tensors_digest(checkpoint_model_weights(path)) if path and os.path.isfile(path) else None


def compare(rows: list[dict], other_json: str) -> list[str]:
    """Lines saying, per seed in both runs, whether the final weights are bitwise equal."""
    with open(other_json, encoding="utf-8") as handle:
        other = {r["seed"]: r for r in json.load(handle)["rows"]}
    lines = []
    for row in rows:
        theirs = other.get(row["seed"])
        if theirs is None or not theirs.get("weights_digest") or not row.get("weights_digest"):
            continue
        same = theirs["weights_digest"] == row["weights_digest"]
        lines.append(f"seed {row['seed']}: final weights {'IDENTICAL' if same else 'DIFFERENT'} to {other_json} "
                     f"({row['weights_digest'][:16]} vs {theirs['weights_digest'][:16]}; wall {row['wall_min']:.1f} "
                     f"vs {theirs['wall_min']:.1f} min)")
    return lines


def summary_row(seed: int, summary: dict) -> dict:
    """One table row from a ``quickstart_summary.json``."""
    selectivity = summary.get("selectivity") or []
    returned = sum(int(c["returned"]) for c in selectivity)
    correct = sum(int(c["correct"]) for c in selectivity)
    objects = sum(int(c["objects"]) for c in selectivity)
    return {"seed": seed, "wall_min": summary["wall_time_s"] / 60, "train_min": summary["train_time_s"] / 60,
            "bbox_map50": find_metric(summary.get("metrics"), "[bbox] test_mAP@50"),
            "segm_map50": find_metric(summary.get("metrics"), "[segm] test_mAP@50"),
            "selectivity_precision": correct / returned if returned else None,
            "selectivity_recall": correct / objects if objects else None,
            "selectivity_returned": returned, "weights_digest": final_weights_digest(summary)}


def spread(rows: list[dict]) -> dict:
    """``{key: {"min", "median", "max"}}`` over the rows (missing values left out)."""
    stats = {}
    for _, key, _ in COLUMNS:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            stats[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return stats


def _cell(fmt: str, value) -> str:
    return "-" if value is None else fmt.format(value)


def format_table(rows: list[dict], stats: dict) -> str:
    lines = ["| seed | " + " | ".join(title for title, _, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['seed']} | " + " | ".join(_cell(fmt, row.get(key)) for _, key, fmt in COLUMNS) + " |")
    for stat in ("min", "median", "max"):
        lines.append(f"| {stat} | " + " | ".join(_cell(fmt, stats.get(key, {}).get(stat)) for _, key, fmt in COLUMNS)
                     + " |")
    return "\n".join(lines)


def run_seed(seed: int, out: str, extra: list[str], reuse: bool) -> tuple[dict, float | None]:
    """Run (or, with ``reuse``, read) one seed; returns its summary and the process's wall seconds."""
    folder = os.path.join(out, f"seed_{seed}")
    summary_path = os.path.join(folder, "quickstart_summary.json")
    if os.path.exists(folder):
        if reuse and os.path.isfile(summary_path):
            print(f"[seed {seed}] reusing {summary_path}", flush=True)
            with open(summary_path, encoding="utf-8") as handle:
                return json.load(handle), None
        raise SystemExit(f"error: {folder} exists; give another --out (or --reuse to read a finished run's "
                         "quickstart_summary.json)")
    command = [sys.executable, "-m", "mask_grounding_dino", "quickstart", "--seed", str(seed), "--out", folder, *extra]
    log_path = os.path.join(out, f"seed_{seed}.log")
    print(f"[seed {seed}] {' '.join(command[1:])}  (log: {log_path})", flush=True)
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - started
    if code != 0 or not os.path.isfile(summary_path):
        raise SystemExit(f"error: the quickstart for seed {seed} failed (exit code {code}); see {log_path}")
    with open(summary_path, encoding="utf-8") as handle:
        return json.load(handle), seconds


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: comma-separated integers expected, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: at least one seed, none twice (got {text!r})")
    return seeds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--num-seeds", type=int, default=3, help="seeds 0..N-1 when --seeds is not given")
    parser.add_argument("--out", default="runs/quickstart_seeds", help="parent folder of the seed_S runs")
    parser.add_argument("--smoke", action="store_true", help="a tiny job per seed (checks this script, not the model)")
    parser.add_argument("--reuse", action="store_true", help="read finished runs found in --out instead of stopping")
    parser.add_argument("--compare", metavar="JSON",
                        help="an earlier run's quickstart_seeds.json: say per common seed whether the final "
                             "weights are bitwise identical")
    parser.add_argument("extra", nargs="*", help="after --: more quickstart arguments (flags, key=value overrides)")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(range(args.num_seeds))
    if not seeds:
        parser.error("--num-seeds must be at least 1")
    extra = (SMOKE if args.smoke else []) + list(args.extra)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    before = uptime()
    print(f"uptime before: {before}", flush=True)
    rows, runs = [], []
    for seed in seeds:
        summary, seconds = run_seed(seed, out, extra, args.reuse)
        rows.append(summary_row(seed, summary))
        runs.append({"seed": seed, "process_wall_s": seconds, "summary": summary})
    after = uptime()
    stats = spread(rows)
    print(format_table(rows, stats))
    print(f"uptime before: {before}\nuptime after:  {after}")
    record = {"command": ["mask_grounding_dino", "quickstart", *extra], "seeds": seeds, "smoke": args.smoke,
              "uptime_before": before, "uptime_after": after, "rows": rows, "spread": stats, "runs": runs}
    path = os.path.join(out, "quickstart_seeds.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    print(f"written: {path}")
    if args.compare:
        print("\n".join(compare(rows, args.compare)) or f"no seed with weights in both runs ({args.compare})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
