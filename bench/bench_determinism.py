"""Is CPU training bit-identical run to run, and what does it cost?

The quickstart preset's model (``mask_grounding_dino/presets/quickstart.yaml``: masks,
denoising queries, frozen MiniLM with its phrase cache) on batches of the built-in synthetic
dataset, in one process, under two settings of torch:

* ``default``: torch's default kernels (``train.cudnn.deterministic=false`` on CPU);
* ``deterministic``: what training applies by default on CPU
  (``mask_grounding_dino.utils.cpu.deterministic_algorithms``);
* ``deterministic_fill`` (``--fill``): the same plus torch's NaN fill of uninitialised memory,
  which ``deterministic_algorithms`` turns off.

Two measurements per setting:

1. repeatability: the gradients of one batch, computed ``--repeats`` times; how many repeats
   (and how many parameters at most) differ bitwise from the first;
2. cost: ``--rounds`` training steps (forward, loss, backward, clipping, AdamW), the settings
   interleaved step by step on the same batches, so a change of machine load hits all of
   them alike; median wall and process-CPU seconds per step.

    python bench/bench_determinism.py                        # 2 threads, batch 8, 224 px
    python bench/bench_determinism.py --rounds 20 --fill
    python bench/bench_determinism.py --size 64 --batch 2 --rounds 1 --repeats 2   # smoke run

Not a test: times depend on the machine and its load (``uptime`` is printed before and after).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_train import OursStep, data_spec, make_batches, make_data, train_step  # noqa: E402
from machine_load import uptime  # noqa: E402


def settings(fill: bool) -> dict:
    """name -> a function returning the context manager that applies the setting."""
    import torch
    from mask_grounding_dino.utils.cpu import deterministic_algorithms

    @contextlib.contextmanager
    def default():
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(False)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before)

    @contextlib.contextmanager
    def with_fill():
        with deterministic_algorithms(True):
            torch.utils.deterministic.fill_uninitialized_memory = True
            yield                              # deterministic_algorithms restores the fill flag

    chosen = {"default": default, "deterministic": lambda: deterministic_algorithms(True)}
    if fill:
        chosen["deterministic_fill"] = with_fill
    return chosen


def gradient_digests(side, batch) -> dict[str, str]:
    """SHA-1 of every trainable parameter's gradient after one forward + backward of ``batch``."""
    side.optimizer.zero_grad(set_to_none=True)
    side.loss(side.forward(batch), batch).backward()
    return {f"{i}": hashlib.sha1(p.grad.numpy().tobytes()).hexdigest() for i, p in enumerate(side.params)
            if p.grad is not None}


def repeatability(side, batch, setting, repeats: int) -> dict:
    import torch

    with setting():
        torch.manual_seed(0)
        first = gradient_digests(side, batch)
        differing = []
        for _ in range(repeats - 1):
            torch.manual_seed(0)
            again = gradient_digests(side, batch)
            differing.append(sum(first[k] != again.get(k) for k in first))
    return {"repeats": repeats, "repeats_differing": sum(n > 0 for n in differing),
            "max_params_differing": max(differing, default=0), "params": len(first)}


def quickstart_config(data: str, size: int, batch: int):
    from mask_grounding_dino.actions.quickstart import preset_spec
    from mask_grounding_dino.config import load_spec

    preset = preset_spec()
    spec = data_spec(data, size, batch, masks=True)
    return load_spec(base={"model": preset["model"], "dataset": spec["dataset"],
                           "train": {"optim": preset["train"]["optim"], "freeze": preset["train"]["freeze"]}})


def measure(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    cfg = quickstart_config(args.data, args.size, args.batch)
    batches = make_batches(cfg, args.batches)
    side = OursStep(cfg, cache=True)
    chosen = settings(args.fill)
    result = {"threads": torch.get_num_threads(), "batch": args.batch, "size": args.size, "settings": {}}
    for name, setting in chosen.items():
        result["settings"][name] = {"repeatability": repeatability(side, batches[0], setting, args.repeats),
                                    "wall_s": [], "cpu_s": []}
    for name, setting in chosen.items():        # warm-up: text cache, allocator
        with setting():
            train_step(side, batches[0])
    for r in range(args.rounds):
        for name, setting in chosen.items():
            with setting():
                wall, cpu = time.perf_counter(), time.process_time()
                train_step(side, batches[r % len(batches)])
                record = result["settings"][name]
                record["wall_s"].append(time.perf_counter() - wall)
                record["cpu_s"].append(time.process_time() - cpu)
    for record in result["settings"].values():
        record["median_wall_s"] = statistics.median(record["wall_s"]) if record["wall_s"] else None
        record["median_cpu_s"] = statistics.median(record["cpu_s"]) if record["cpu_s"] else None
    return result


def report(result: dict, before: str, after: str) -> str:
    base = result["settings"]["default"]
    lines = [f"Quickstart model, CPU, {result['threads']} threads, batch {result['batch']}, {result['size']} px",
             f"uptime before: {before}", f"uptime after:  {after}", "",
             "| setting | repeats differing | params differing (max) | median step s | steps/s | vs default "
             "| median CPU s |", "|---|---|---|---|---|---|---|"]
    for name, record in result["settings"].items():
        rep = record["repeatability"]
        wall = record["median_wall_s"]
        ratio = f"{wall / base['median_wall_s']:.3f}" if wall and base["median_wall_s"] else "-"
        lines.append(f"| {name} | {rep['repeats_differing']}/{rep['repeats'] - 1} | {rep['max_params_differing']}/"
                     f"{rep['params']} | {wall or float('nan'):.3f} | {1 / wall if wall else float('nan'):.3f} "
                     f"| {ratio} | {record['median_cpu_s'] or float('nan'):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the race needs 2 or more)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (the preset's)")
    parser.add_argument("--size", type=int, default=224, help="image side in px (the preset trains at 192-224)")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps per setting, interleaved")
    parser.add_argument("--repeats", type=int, default=4, help="gradient computations of one batch per setting")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--fill", action="store_true", help="also time torch's NaN fill of uninitialised memory")
    parser.add_argument("--data", help="synthetic dataset folder (default: generated in a temporary folder)")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2 (the first computation is the reference)")

    with tempfile.TemporaryDirectory(prefix="bench_determinism_") as tmp:
        args.data = make_data(args.data or os.path.join(tmp, "synth"), args.size, max(16, args.batch * args.batches))
        before = uptime()
        result = measure(args)
        after = uptime()
    print(report(result, before, after))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "uptime_before": before, "uptime_after": after, **result}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
