"""Training throughput: our model against transformers' GroundingDinoForObjectDetection.

One training step = forward + loss + backward + gradient clipping (0.1) + AdamW step, on
CPU, the small configuration of both (width 128, 2+2 layers, 100 queries, 8 heads, FFN 512,
MiniLM text encoder, a narrow ResNet: ours ``cpu_small`` = ``resnet_tiny``, the peer the same
shape through transformers' ResNet, see ``peer.py``), 320x320 images of the built-in
synthetic dataset, the same batches for both. Text encoders are frozen on both sides (TAO's
specs freeze ``bert``); ``+cache`` rows add the exact per-phrase cache of the frozen encoder
(``model.enable_text_cache()``; the peer gets the same cache around its text backbone).

Each (case) runs in its own subprocess, so the peak RSS is the case's own. The driver prints
median step time, images/s, ours/peer ratios against the peer's detection-only row (the peer
has no mask branch: ours with masks is compared with the peer without) and peak RSS.

    python bench/bench_train.py                          # every case, batch 4, 2 threads
    python bench/bench_train.py --batch 8 --steps 10
    python bench/bench_train.py --cases ours_det --profile    # where our step spends its time
    python bench/bench_train.py --clock cpu --threads 1  # steadier on a shared machine
    python bench/bench_train.py --msda grid_sample       # ours with the reference sampling
    python bench/bench_train.py --json train_bench.json

Cases: ``peer_det``, ``peer_det_cache``, ``ours_det``, ``ours_det_cache``, ``ours_mask``,
``ours_mask_cache`` (masks = TAO's mask branch + region head, with their losses).
Not a test: numbers depend on the machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from hook_timer import HookTimer  # noqa: E402  (bench/ is on sys.path from here)

CASES = {
    "peer_det": dict(impl="peer", masks=False, cache=False),
    "peer_det_cache": dict(impl="peer", masks=False, cache=True),
    "ours_det": dict(impl="ours", masks=False, cache=False),
    "ours_det_cache": dict(impl="ours", masks=False, cache=True),
    "ours_mask": dict(impl="ours", masks=True, cache=False),
    "ours_mask_cache": dict(impl="ours", masks=True, cache=True),
}
LR, WEIGHT_DECAY, CLIP = 2e-4, 1e-4, 0.1
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


# ----------------------------------------------------------------------------- data
def make_data(folder: str, size: int, images: int) -> str:
    """The built-in synthetic dataset at ``size`` px (train split only), once per folder."""
    from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset

    if not os.path.exists(os.path.join(folder, "train", "annotations_odvg.jsonl")):
        generate_synthetic_dataset(folder, SynthConfig(num_train=images, num_val=0, num_vg=0, width=size,
                                                       height=size, seed=0))
    return folder


def data_spec(folder: str, size: int, batch: int, masks: bool) -> dict:
    """Spec sections that make every batch B x 3 x size x size (flip only, no crop)."""
    train = os.path.join(folder, "train")
    return {"dataset": {
        "train_data_sources": [{"image_dir": os.path.join(train, "images.tar.gz"),
                                "json_file": os.path.join(train, "annotations_odvg.jsonl"),
                                "label_map": os.path.join(train, "annotations_odvg_labelmap.json")}],
        "batch_size": batch, "workers": 0, "has_mask": masks,
        "augmentation": {"scales": [size], "train_random_resize": [size], "train_random_crop_min": 1000,
                         "train_random_crop_max": 1333, "random_resize_max_size": size, "fixed_padding": False,
                         "test_random_resize": size}}}


def make_batches(cfg, count: int) -> list:
    """``count`` batches of the seeded training loader (the same in every subprocess)."""
    from mask_grounding_dino.data.loaders import build_dataloader
    from mask_grounding_dino.text import TextProcessor

    loader = build_dataloader(cfg, "train", text_processor=TextProcessor("minilm", cfg.model.max_text_len), seed=0)
    batches = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


# ----------------------------------------------------------------------------- one step per side
class OursStep:
    """Our model + TAO criterion + TAO's AdamW groups; ``bert`` frozen."""

    def __init__(self, cfg, cache: bool):
        import torch
        from mask_grounding_dino.engine.optim import apply_freeze, build_optimizer
        from mask_grounding_dino.model import MaskGroundingDINO
        from mask_grounding_dino.model.criterion import SetCriterion

        torch.manual_seed(0)
        self.model = MaskGroundingDINO.from_config(cfg.model)
        apply_freeze(self.model, ["bert"])
        self.model.train()
        self.model.bert.eval()          # frozen: no dropout (the peer's frozen encoder is in eval too)
        if cache:
            self.model.enable_text_cache()
        self.criterion = SetCriterion.from_config(cfg.model)
        self.optimizer, _ = build_optimizer(self.model, cfg.model, cfg.train.optim)
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, batch):
        return self.model(batch.images, *batch.text.as_tuple(), pixel_mask=batch.pixel_mask, targets=batch.targets)

    def loss(self, outputs, batch):
        return self.criterion(outputs, batch.targets).total


class PeerStep:
    """transformers' model with its own loss (``labels``); text backbone frozen."""

    def __init__(self, cfg, cache: bool):
        import torch
        from peer import build_peer, set_train_mode, small_peer_config

        self.model = build_peer(small_peer_config(), text_cache=cache)
        set_train_mode(self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=LR, weight_decay=WEIGHT_DECAY)

    def forward(self, batch):
        from peer import peer_inputs, peer_labels
        return self.model(**peer_inputs(batch), labels=peer_labels(batch))

    def loss(self, outputs, batch):
        return outputs.loss


def train_step(side, batch, marks: dict | None = None, clock=time.perf_counter) -> float:
    """One step; ``marks`` collects the seconds of each phase when given."""
    import torch

    t0 = clock()
    side.optimizer.zero_grad(set_to_none=True)
    outputs = side.forward(batch)
    t1 = clock()
    loss = side.loss(outputs, batch)
    t2 = clock()
    loss.backward()
    t3 = clock()
    torch.nn.utils.clip_grad_norm_(side.params, CLIP)
    side.optimizer.step()
    t4 = clock()
    if marks is not None:
        for name, seconds in (("forward", t1 - t0), ("loss (matching + terms)", t2 - t1), ("backward", t3 - t2),
                              ("clip + AdamW step", t4 - t3)):
            marks[name] += seconds
    return float(loss.detach())


# ----------------------------------------------------------------------------- worker
def worker(case_name: str, args) -> dict:
    import torch
    from mask_grounding_dino.config import load_spec
    from mask_grounding_dino.model.presets import PRESETS

    torch.set_num_threads(args.threads)
    case = CASES[case_name]
    model_section = dict(PRESETS["cpu_small"], has_mask=case["masks"], dn_number=args.dn_number)
    if not case["masks"]:
        model_section["num_region_queries"] = 0
    cfg = load_spec(base={**data_spec(args.data, args.size, args.batch, case["masks"]), "model": model_section,
                          "train": {"optim": {"lr": LR, "lr_backbone": LR, "weight_decay": WEIGHT_DECAY}}})
    batches = make_batches(cfg, args.batches)
    started = time.perf_counter()
    side = (PeerStep if case["impl"] == "peer" else OursStep)(cfg, case["cache"])
    build_s = time.perf_counter() - started
    clock = CLOCKS[args.clock]
    for i in range(args.warmup):
        train_step(side, batches[i % len(batches)])
    times, losses, marks = [], [], defaultdict(float)
    for i in range(args.steps):
        t0 = clock()
        losses.append(train_step(side, batches[(args.warmup + i) % len(batches)], marks, clock))
        times.append(clock() - t0)
    result = dict(case=case_name, **case, clock=clock.__name__, times=times, median_s=statistics.median(times),
                  images_per_s=args.batch / statistics.median(times), losses=losses, build_s=build_s,
                  phases={k: v / args.steps for k, v in marks.items()}, threads=args.threads, batch=args.batch,
                  size=args.size, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  trainable_m=sum(p.numel() for p in side.params) / 1e6)
    cache = getattr(getattr(side.model, "text_cache", None), "hits", None)
    if case["impl"] == "peer" and case["cache"]:
        cache = side.model.model.text_backbone.cache.hits
    result["cache_hits"] = cache
    if case["impl"] == "ours":
        try:   # informative only: the backend our deformable attention picks when training on CPU
            from mask_grounding_dino.model.ms_deform_attn import resolve_backend
            result["msda_backend"] = resolve_backend("auto", torch.zeros(1, 1, 1, 32), needs_grad=True)
        except Exception as exc:  # noqa: BLE001  (another version of the module)
            result["msda_backend"] = f"unknown ({exc.__class__.__name__})"
    if args.profile:
        result["profile"] = profile(side, batches, args)
    return result


def profile(side, batches, args, steps: int = 3) -> dict:
    """torch.profiler over a few steps: the top operators by self CPU time, and forward time
    per top-level component (inclusive, forward hooks)."""
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    impl = "peer" if isinstance(side, PeerStep) else "ours"
    timer = HookTimer(side.model, [(label, re.compile(p)) for label, p in COMPONENTS[impl]])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            train_step(side, batches[i % len(batches)])
    rows = []
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for event in sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top]:
        rows.append((event.key, event.self_cpu_time_total / 1e6 / steps, 100 * event.self_cpu_time_total / total,
                     event.count // steps))
    timer.remove()
    return {"ops": rows, "components": {label: timer.totals.get(label, 0.0) / steps for label, _ in COMPONENTS[impl]}}


#: Forward components timed by --profile: (label, regex on module names), inclusive seconds;
#: indented labels are parts of the row above. The mask head runs through methods, not forward,
#: so with masks it shows up in "total" and the operator table only.
COMPONENTS = {
    "ours": [("backbone", r"^backbone$"), ("text encoder", r"^bert$"), ("encoder", r"^transformer\.encoder$"),
             ("  deformable self-attn layers", r"^transformer\.encoder\.layers\.\d+$"),
             ("  image-text fusion", r"^transformer\.encoder\.fusion_layers\.\d+$"),
             ("  text enhancer", r"^transformer\.encoder\.text_layers\.\d+$"),
             ("decoder", r"^transformer\.decoder$"), ("region head (ReLA)", r"^rela$"), ("total", r"^$")],
    "peer": [("backbone", r"^model\.backbone$"), ("text encoder", r"^model\.text_backbone$"),
             ("encoder", r"^model\.encoder$"),
             ("  deformable self-attn layers", r"^model\.encoder\.layers\.\d+\.deformable_layer$"),
             ("  image-text fusion", r"^model\.encoder\.layers\.\d+\.fusion_layer$"),
             ("  text enhancer", r"^model\.encoder\.layers\.\d+\.text_enhancer_layer$"),
             ("decoder", r"^model\.decoder$"), ("total (incl. the peer's loss)", r"^$")],
}


# ----------------------------------------------------------------------------- driver
def run_worker(case: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="")
    if args.msda:
        env["MGDINO_MSDA_BACKEND"] = args.msda      # our deformable-attention backend (ms_deform_attn.py)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, "--data", args.data, "--size", str(args.size),
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batches", str(args.batches), "--threads", str(args.threads), "--clock", args.clock,
           "--dn-number", str(args.dn_number), "--top", str(args.top)] + (["--profile"] if args.profile else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def code_state() -> str:
    """The commit measured, and whether the package had uncommitted changes (read-only git calls)."""
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mask_grounding_dino"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{head or 'unknown'}" + (f" + {len(dirty)} uncommitted file(s) in mask_grounding_dino" if dirty else "")


def merge_rounds(runs: list[dict]) -> dict:
    """One result per case: the median over every timed step of every round, the largest RSS."""
    merged = dict(runs[-1])
    times = [t for r in runs for t in r["times"]]
    merged.update(times=times, median_s=statistics.median(times), rounds=len(runs),
                  images_per_s=merged["batch"] / statistics.median(times),
                  peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                  phases={k: statistics.mean(r["phases"][k] for r in runs) for k in runs[-1]["phases"]})
    return merged


def report(results: list[dict], args, load: tuple[float, float, float]) -> str:
    ref = next((r for r in results if r["case"] == "peer_det"), None)
    lines = [f"Training step ({args.clock} clock), CPU, {args.threads} threads, batch {args.batch}, "
             f"{args.size}x{args.size}, median of {args.steps} steps x {args.rounds} round(s) after {args.warmup} "
             f"warm-up; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; code {code_state()}", "",
             "| case | median step s | images/s | ours/peer images/s | peak RSS MB | trainable M | ours MSDA (train) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r['images_per_s'] / ref['images_per_s']:.2f}" if ref and r["impl"] == "ours" else "-"
        lines.append(f"| {r['case']} | {r['median_s']:.3f} | {r['images_per_s']:.2f} | {ratio} | "
                     f"{r['peak_rss_mb']:.0f} | {r['trainable_m']:.2f} | {r.get('msda_backend', '-')} |")
    if ref:
        lines.append("")
        lines.append("ours/peer: against peer_det (the peer has no mask branch; ours_mask* rows compare ours "
                     "WITH masks to the peer WITHOUT).")
    for r in results:
        lines.append(f"{r['case']}: phases per step " + ", ".join(f"{k} {v:.3f}s" for k, v in r["phases"].items()))
    for r in results:
        prof = r.get("profile")
        if not prof:
            continue
        lines += ["", f"Profile of {r['case']} (3 steps under torch.profiler, which inflates times; seconds per step)",
                  "  forward by component (inclusive wall time):"]
        for name, seconds in prof["components"].items():
            lines.append(f"    {name:<40} {seconds:8.3f}")
        lines.append("  top operators by self CPU time (all threads):")
        for key, seconds, share, count in prof["ops"]:
            lines.append(f"    {key[:60]:<60} {seconds:8.3f}  {share:5.1f}%  x{count}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    parser.add_argument("--batch", type=int, default=4, help="images per step (same for both)")
    parser.add_argument("--size", type=int, default=320, help="image side in px")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every case this many times, interleaved (median over all steps)")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall time, or process CPU time (all threads; steadier on a shared machine)")
    parser.add_argument("--dn-number", type=int, default=0, help="our denoising groups (model.dn_number)")
    parser.add_argument("--msda", choices=["gather", "grid_sample"],
                        help="force our deformable-attention backend (default: the model's automatic choice)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler + forward components per case")
    parser.add_argument("--top", type=int, default=15, help="operators listed by --profile")
    parser.add_argument("--data", help="synthetic dataset folder (default: generated in a temporary folder)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return 0

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        args.data = make_data(args.data or os.path.join(tmp, "synth"), args.size, max(32, args.batch * args.batches))
        load = os.getloadavg()
        by_case: dict[str, list[dict]] = {case: [] for case in cases}
        for round_index in range(args.rounds):     # cases interleaved, so a load change hits all of them
            for case in cases:
                print(f"[{case}] round {round_index + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
                by_case[case].append(run_worker(case, args))
        results = [merge_rounds(runs) for runs in by_case.values()]
    text = report(results, args, load)
    print(text)
    if load[0] > (os.cpu_count() or 1) and args.clock == "wall":
        print(f"warning: load average {load[0]:.1f} > {os.cpu_count()} cores: wall-clock times are inflated by other "
              "processes (and multi-threaded ops stall when their threads are descheduled); "
              "use --clock cpu --threads 1 on a shared machine")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "worker"}, "load_before": load,
                       "code": code_state(), "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
