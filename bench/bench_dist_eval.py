"""evaluate and inference in 1 process against N processes (``num_gpus: N`` on a machine without
a GPU: Lightning DDP over gloo), on the same model and data.

Each run is the command a user types (``python -m mask_grounding_dino evaluate|inference -e
spec.yaml ...``) in a fresh results folder. Reported per process count: wall time of each
command (process start, imports and model loading included), its ratio to the 1-process run,
the machine load (``uptime``) before and after, and whether the outputs are identical: every
evaluate metric, the sha256 of the COCO predictions file, of ``results.json`` with its entries
sorted (the file itself is written in a stable order; sorting makes the digest independent of
it) and of every picture and label file.

Threads: each process gets ``--threads`` (default: the machine's cores divided by the process
count, Lightning's own rule for CPU processes), so the runs use the same cores.

    python bench/bench_dist_eval.py --spec runs/qs/spec.yaml --checkpoint runs/qs/train/model.pth
    python bench/bench_dist_eval.py --spec ... --checkpoint ... --processes 1 2 --threads 1

The inference runs predict on the test images (``dataset.test_data_sources.image_dir``) with the
test set's class names (``--captions``, default: ``label_map.txt`` next to the test json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    return env


def _run(action: str, spec: str, overrides: list[str], threads: int) -> float:
    command = [sys.executable, "-m", "mask_grounding_dino", action, "-e", spec, *overrides]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=str(REPO_ROOT), env=_env(threads), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return seconds


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sorted_results_sha(path: pathlib.Path) -> str:
    entries = json.loads(path.read_text())
    entries.sort(key=lambda e: json.dumps(e, sort_keys=True))
    return _sha(json.dumps(entries, sort_keys=True).encode())


def _evaluate_outputs(folder: pathlib.Path) -> dict:
    predictions = next(folder.glob("*_results.json"), None) or next(folder.glob("*_predictions.json"))
    return {"metrics": json.loads((folder / "latest_results.json").read_text()),
            "predictions_sha256": _sha(predictions.read_bytes())}


def _inference_outputs(folder: pathlib.Path) -> dict:
    files = hashlib.sha256()
    count = 0
    for path in sorted(p for sub in ("images_annotated", "labels") for p in (folder / sub).rglob("*") if p.is_file()):
        files.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
        count += 1
    return {"results_sorted_sha256": _sorted_results_sha(folder / "results.json"),
            "results_file_sha256": _sha((folder / "results.json").read_bytes()),
            "index_sha256": _sha((folder / "results_index.json").read_bytes()),
            "pictures_and_labels_sha256": files.hexdigest(), "pictures_and_labels": count,
            "detections": len(json.loads((folder / "results.json").read_text()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="experiment spec (test_data_sources: the held-out set)")
    parser.add_argument("--checkpoint", required=True, help="trained model (.pth)")
    parser.add_argument("--captions", default=None, help="class names for inference (default: label_map.txt "
                                                         "next to the test json)")
    parser.add_argument("--out", default="/tmp/bench_dist_eval", help="results root (one folder per run)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None, help="threads per process (default: cores / N)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT))
    from mask_grounding_dino.config import load_spec

    test = load_spec(args.spec).dataset.test_data_sources
    captions = args.captions or str(pathlib.Path(test.json_file).with_name("label_map.txt"))
    out = pathlib.Path(args.out)
    report = {"spec": args.spec, "checkpoint": args.checkpoint, "cores": os.cpu_count(), "runs": []}
    for n in args.processes:
        threads = args.threads or max(1, (os.cpu_count() or 1) // n)
        root = out / f"p{n}"
        common = [f"results_dir={root}"]  # typed on the command line: wins over the spec's <action>.results_dir
        row = {"processes": n, "threads_per_process": threads, "uptime_before": _uptime()}
        row["evaluate_s"] = _run("evaluate", args.spec, [*common, f"evaluate.checkpoint={args.checkpoint}",
                                                         f"evaluate.num_gpus={n}"], threads)
        row["inference_s"] = _run("inference", args.spec, [
            *common, f"inference.checkpoint={args.checkpoint}", f"inference.num_gpus={n}",
            f"dataset.infer_data_sources.image_dir={test.image_dir}",
            f"dataset.infer_data_sources.captions={captions}", "dataset.infer_data_sources.data_type=OD"], threads)
        row["uptime_after"] = _uptime()
        row["evaluate"] = _evaluate_outputs(root / "evaluate")
        row["inference"] = _inference_outputs(root / "inference")
        report["runs"].append(row)

    base = report["runs"][0]
    print(f"{'processes':>9} {'threads':>7} {'evaluate s':>10} {'ratio':>6} {'inference s':>11} {'ratio':>6} "
          f"{'metrics':>8} {'files':>6}")
    for row in report["runs"]:
        row["same_metrics"] = row["evaluate"]["metrics"] == base["evaluate"]["metrics"]
        row["same_files"] = (row["evaluate"]["predictions_sha256"] == base["evaluate"]["predictions_sha256"]
                             and row["inference"] == base["inference"])
        print(f"{row['processes']:>9} {row['threads_per_process']:>7} {row['evaluate_s']:>10.1f} "
              f"{row['evaluate_s'] / base['evaluate_s']:>6.2f} {row['inference_s']:>11.1f} "
              f"{row['inference_s'] / base['inference_s']:>6.2f} {str(row['same_metrics']):>8} "
              f"{str(row['same_files']):>6}")
        print(f"          before: {row['uptime_before']}\n          after:  {row['uptime_after']}")
    key = "[bbox] test_mAP@50-95"
    print(f"{key}: {base['evaluate']['metrics'].get(key)}; results.json sorted sha256: "
          f"{base['inference']['results_sorted_sha256']}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all(r["same_metrics"] and r["same_files"] for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
