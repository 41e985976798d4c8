"""AutoML on the quickstart generator's data with a small model: does the search beat the default
spec, how long does a study take, how much do hyperband / asha save, and does a killed study resume?

Steps (each a real command-line run, one thread per process):

1. data: the quickstart generator's training + validation images (by default 400 images of
   128 px with four categories, red / blue x circle / square: a model this small learns them in
   minutes, where the twelve categories of the main job stay near mAP 0 for the first
   hundreds of steps and every trial would tie), and a separate held-out split (another seed)
   that neither the search nor the default run sees;
2. default: ``train`` with the preset's spec (the quickstart preset, ``--hidden`` wide) for
   ``--epochs`` epochs, then ``evaluate`` on the held-out split;
3. for each ``--algorithms`` entry: ``automl`` with ``--trials`` trials of at most ``--epochs``
   epochs (the bayesian study's trials train ``--epochs``; hyperband / asha prune at their
   rungs), then ``evaluate`` of the best trial's checkpoint on the held-out split; the study's
   wall time, and epochs trained / (trials x epochs);
4. resume: a bayesian study of ``--resume-trials`` trials killed with SIGKILL once half of them
   finished, rerun: completed trials at the end (must equal its trial count), jobs started (no
   trial trained twice).

    python bench/bench_automl.py --out /tmp/bench_automl                 # 12 trials, up to 9 epochs
    python bench/bench_automl.py --out /tmp/b --trials 4 --algorithms asha --no-resume   # quick look
    python bench/bench_automl.py --out /tmp/b12 --colors '' --shapes '' --images 800   # the main job's 12 classes

Writes ``<out>/bench_automl.json`` and prints a table; ``uptime`` before and after. With TAO's
reduction factor 3 the rungs of ``--epochs 9`` are epochs 1, 3 and 9; with ``--epochs 2`` the
only rung below the budget is epoch 1, so a pruned trial saves at most half its epochs there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_load import uptime  # noqa: E402

#: The bench's model: the quickstart preset narrowed to ``--hidden`` (64: ~45 s for 150 steps on one
#: thread) on 128 px images. ``hidden_dim`` / ``dim_feedforward`` are set from ``--hidden``.
TINY = {"model.backbone": "resnet_tiny", "model.hidden_dim": 64, "model.nheads": 4, "model.dim_feedforward": 256,
        "model.enc_layers": 1, "model.dec_layers": 2, "model.num_queries": 30, "model.num_select": 30,
        "model.dn_number": 10, "dataset.batch_size": 8, "dataset.workers": 0,
        "dataset.augmentation.scales": [112, 128], "dataset.augmentation.train_random_resize": [128],
        "dataset.augmentation.train_random_crop_min": 96, "dataset.augmentation.train_random_crop_max": 128,
        "dataset.augmentation.random_resize_max_size": 128, "dataset.augmentation.test_random_resize": 128,
        "train.validation_interval": 1}  # every epoch: each one is a rung the search can judge
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
       "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled",
       "CUDA_VISIBLE_DEVICES": ""}


def _cli(*args: str, log: str) -> float:
    start = time.time()
    with open(log, "a", encoding="utf-8") as handle:
        code = subprocess.run([sys.executable, "-m", "mask_grounding_dino", *args], env=ENV, stdout=handle,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed (exit {code}); see {log}")
    return time.time() - start


def _data(out: str, images: int, size: int, colors: tuple[str, ...] = (),
          shapes: tuple[str, ...] = ()) -> tuple[str, str]:
    """The quickstart generator's data (``colors`` x ``shapes`` categories; empty: its twelve)."""
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    words = {**({"colors": tuple(colors)} if colors else {}), **({"shapes": tuple(shapes)} if shapes else {})}
    data, held_out = os.path.join(out, "data"), os.path.join(out, "held_out")
    if not os.path.isdir(data):
        generate_synthetic_dataset(data, SynthConfig(num_train=images, num_val=max(8, images // 4), num_vg=0,
                                                     width=size, height=size, seed=0, **words))
    if not os.path.isdir(held_out):
        generate_synthetic_dataset(held_out, SynthConfig(num_train=0, num_val=max(8, images // 4), num_vg=0,
                                                         width=size, height=size, seed=1, **words))
    return data, held_out


def _spec(out: str, data: str, held_out: str, epochs: int) -> str:
    """The quickstart's spec on ``data`` with the tiny model, tested on the held-out split."""
    from mask_grounding_dino.actions.quickstart import _spec as quickstart_spec
    from mask_grounding_dino.config import load_spec, save_spec

    _, path = quickstart_spec(out, data, epochs, 0, [])
    test = os.path.join(held_out, "val")
    overrides = {**TINY, "results_dir": os.path.join(out, "default"),
                 "dataset.test_data_sources": {"image_dir": os.path.join(test, "images.tar.gz"),
                                               "json_file": os.path.join(test, "annotations.json"), "data_type": "OD"}}
    save_spec(load_spec(path, overrides=overrides), path)
    return path


def _held_out_map(spec: str, checkpoint: str, folder: str, log: str) -> float:
    _cli("evaluate", "-e", spec, f"evaluate.checkpoint={checkpoint}", f"evaluate.results_dir={folder}", log=log)
    with open(os.path.join(folder, "latest_results.json"), encoding="utf-8") as handle:
        return float(json.load(handle)["[bbox] test_mAP@50"])


def _study(spec: str, out: str, name: str, pairs: list[str], log: str) -> tuple[dict, float]:
    seconds = _cli("automl", "-e", spec, f"results_dir={os.path.join(out, name)}", *pairs, log=log)
    with open(os.path.join(out, name, "automl", "report.json"), encoding="utf-8") as handle:
        return json.load(handle), seconds


def _resume(spec: str, out: str, trials: int, concurrent: int, epochs: int, log: str) -> dict:
    folder = os.path.join(out, "resume")
    pairs = [f"results_dir={folder}", "automl_algorithm=bayesian", f"automl_max_recommendations={trials}",
             f"automl_max_concurrent={concurrent}", f"train.num_epochs={epochs}"]  # bayesian trials train the spec's
    argv = [sys.executable, "-m", "mask_grounding_dino", "automl", "-e", spec, *pairs]
    with open(log, "a", encoding="utf-8") as handle:
        proc = subprocess.Popen(argv, env=ENV, stdout=handle, stderr=subprocess.STDOUT)
        controller = os.path.join(folder, "automl", "controller.json")
        while proc.poll() is None:
            rows = json.load(open(controller, encoding="utf-8")) if os.path.isfile(controller) else []
            if sum(r["status"] == "COMPLETE" for r in rows) >= trials // 2:
                break
            time.sleep(1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _cli("automl", "-e", spec, *pairs, log=log)
    report = json.load(open(os.path.join(folder, "automl", "report.json"), encoding="utf-8"))
    from mask_grounding_dino.jobs import Workspace

    jobs = Workspace(os.path.join(folder, "automl", "jobs"), start_runner=False).list_jobs()
    return {"complete": report["counts"]["COMPLETE"], "failed_dead": report["counts"]["FAIL"],
            "jobs_started": len(jobs), "trials": trials}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=9, help="automl_max_epochs (and the default run's epochs)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--images", type=int, default=400, help="training images (held-out: a quarter)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--colors", default="red,blue", help="category colours ('' = the quickstart's)")
    parser.add_argument("--shapes", default="circle,square", help="category shapes ('' = the quickstart's)")
    parser.add_argument("--hidden", type=int, default=64, help="model.hidden_dim (dim_feedforward: 4x)")
    parser.add_argument("--algorithms", default="bayesian,asha,hyperband")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--resume-trials", type=int, default=6, help="trials of the killed-and-resumed study")
    parser.add_argument("--resume-epochs", type=int, default=3,
                        help="epochs of that study's trials (its train.num_epochs: bayesian trials train the spec's)")
    args = parser.parse_args()
    TINY.update({"model.hidden_dim": args.hidden, "model.dim_feedforward": 4 * args.hidden})
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "bench_automl.log")
    result = {"uptime_before": uptime(), "settings": vars(args)}
    split = lambda text: tuple(w.strip() for w in text.split(",") if w.strip())  # noqa: E731
    data, held_out = _data(args.out, args.images, args.size, split(args.colors), split(args.shapes))
    spec = _spec(args.out, data, held_out, args.epochs)
    default_s = _cli("train", "-e", spec, log=log)
    checkpoint = os.path.join(args.out, "default", "train", "mask_gdino_model_latest.pth")
    result["default"] = {"train_s": round(default_s, 1),
                         "held_out_map50": _held_out_map(spec, checkpoint, os.path.join(args.out, "default_eval"), log)}
    rows = []
    for algorithm in args.algorithms.split(","):
        pairs = [f"automl_algorithm={algorithm}", f"automl_max_recommendations={args.trials}",
                 f"automl_max_epochs={args.epochs}", f"automl_max_concurrent={args.concurrent}"]
        report, seconds = _study(spec, args.out, algorithm, pairs, log)
        best = report["best"]
        held = _held_out_map(best["spec"], best["checkpoint"], os.path.join(args.out, f"{algorithm}_eval"), log) \
            if best else None
        rows.append({"algorithm": algorithm, "wall_s": round(seconds, 1), "best_val_map50": best and best["value"],
                     "held_out_map50": held, "epochs_trained": report["epochs_trained"],
                     "epochs_fraction": round(report["epochs_trained"] / (args.trials * args.epochs), 3),
                     "counts": report["counts"]})
    result["studies"] = rows
    if not args.no_resume:
        result["resume"] = _resume(spec, args.out, args.resume_trials, args.concurrent, args.resume_epochs, log)
    result["uptime_after"] = uptime()
    with open(os.path.join(args.out, "bench_automl.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    print(result["uptime_before"])
    print(f"default spec: held-out [bbox] test_mAP@50 {result['default']['held_out_map50']:.4f}")
    print("| algorithm | wall s | best val mAP@50 | held-out mAP@50 | epochs used / full |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algorithm']} | {r['wall_s']:.0f} | {r['best_val_map50']} | {r['held_out_map50']} | "
              f"{r['epochs_fraction']:.0%} |")
    if "resume" in result:
        print(f"resume after kill -9: {result['resume']}")
    print(result["uptime_after"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
