"""Forward latency: our MaskGroundingDINO against transformers' GroundingDinoForObjectDetection.

Same configuration (ours is built from the peer's config with the checkpoint
importer's mapping), same image tensor and caption, random weights, eval mode,
CPU. Every (case, implementation) runs in its own subprocess so peak RSS is
clean; the report gives the median of ``--runs`` timed forwards after one warm-up.

    python bench/bench_forward.py                          # all cases, 2 threads
    python bench/bench_forward.py --cases swin_t_det --runs 3
    python bench/bench_forward.py --cases small_det --profile   # where the time goes
    python bench/bench_forward.py --msda grid_sample       # ours with the reference sampling
    python bench/bench_forward.py --json results.json
    python bench/bench_forward.py --clock cpu --threads 1  # steadier on a shared machine

Cases:
    swin_t_det   Swin-T + BERT-base, 800x1333, batch 1, detection only (TAO's architecture)
    swin_t_mask  the same with TAO's mask branch and region head (the peer has none: its
                 detection-only time is the reference)
    small_det    small preset at 320x320: swin_nano backbone, width 128, 2+2 layers, 100
                 queries, MiniLM-sized text encoder (random weights)
    small_mask   the small preset with the mask branch and region head

``--profile`` adds inclusive wall time per component (forward hooks): backbone, text
encoder, encoder (and inside it deformable attention, fusion, text enhancer, rest),
decoder (and its deformable attention), heads. Not a test: numbers depend on the machine
and its load; compare ratios measured in one run.
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
import time

from hook_timer import HookTimer   # bench/ is the script folder, first on sys.path

CAPTION = "a cat . a remote control . a sofa . a person ."

CASES = {
    "swin_t_det": dict(size=(800, 1333), config="swin_t", masks=False),
    "swin_t_mask": dict(size=(800, 1333), config="swin_t", masks=True),
    "small_det": dict(size=(320, 320), config="small", masks=False),
    "small_mask": dict(size=(320, 320), config="small", masks=True),
}

#: Components for --profile: (label, regex on the qualified module name) per implementation.
#: Times are inclusive; "of which" rows are parts of the row above them.
COMPONENTS = {
    "peer": [
        ("backbone", r"^model\.backbone$"),
        ("input projection", r"^model\.input_proj_vision\.\d+$"),
        ("text encoder", r"^model\.text_backbone$"),
        ("encoder", r"^model\.encoder$"),
        ("  of which deformable attn", r"^model\.encoder\.layers\.\d+\.deformable_layer\.self_attn$"),
        ("  of which deformable layer rest (FFN, norms)", None),
        ("  of which fusion (bi-attention)", r"^model\.encoder\.layers\.\d+\.fusion_layer$"),
        ("  of which text enhancer", r"^model\.encoder\.layers\.\d+\.text_enhancer_layer$"),
        ("decoder", r"^model\.decoder$"),
        ("  of which deformable cross-attn", r"^model\.decoder\.layers\.\d+\.encoder_attn$"),
        ("heads (class, box)", r"(^|\.)(class_embed|bbox_embed)\.\d+$"),
        ("total", r"^$"),
    ],
    "ours": [
        ("backbone", r"^backbone$"),
        ("input projection", r"^input_proj\.\d+$"),
        ("text encoder", r"^(bert|feat_map)$"),
        ("encoder", r"^transformer\.encoder$"),
        ("  of which deformable attn", r"^transformer\.encoder\.layers\.\d+\.self_attn$"),
        ("  of which deformable layer rest (FFN, norms)", None),
        ("  of which fusion (bi-attention)", r"^transformer\.encoder\.fusion_layers\.\d+$"),
        ("  of which text enhancer", r"^transformer\.encoder\.text_layers\.\d+$"),
        ("decoder", r"^transformer\.decoder$"),
        ("  of which deformable cross-attn", r"^transformer\.decoder\.layers\.\d+\.cross_attn$"),
        ("heads (class, box)", r"(^|\.)(class_embed|bbox_embed)\.\d+$"),
        ("mask head", "method:mask_head:features,predict"),
        ("region head (ReLA)", r"^rela$"),
        ("total", r"^$"),
    ],
}
#: The encoder's deformable layers as a whole (for the "rest" row).
DEFORMABLE_LAYER = {"peer": r"^model\.encoder\.layers\.\d+\.deformable_layer$",
                    "ours": r"^transformer\.encoder\.layers\.\d+$"}


# ----------------------------------------------------------------------------- configurations
def peer_config(name: str):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if name == "swin_t":      # transformers' defaults: Swin-T + BERT-base, 900 queries, 6+6 layers
        return GroundingDinoConfig()
    if name == "small":
        # all-MiniLM-L6-v2's architecture (hidden 384, 6 layers, 12 heads), random weights.
        text = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        swin = SwinConfig(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=7,
                          out_indices=[2, 3, 4])
        return GroundingDinoConfig(backbone_config=swin, text_config=text, d_model=128, encoder_layers=2,
                                   decoder_layers=2, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                                   num_queries=100)
    raise ValueError(name)


def build(impl: str, case: dict):
    """(model, inputs tuple, call) for one implementation."""
    import torch

    torch.manual_seed(0)
    config = peer_config(case["config"])
    height, width = case["size"]
    image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    from mask_grounding_dino.text import TextProcessor
    text = TextProcessor("bert-base-uncased", 256)([CAPTION])
    if impl == "peer":
        from transformers import GroundingDinoForObjectDetection
        model = GroundingDinoForObjectDetection(config).eval()

        def call():
            return model(pixel_values=image, input_ids=text.input_ids,
                         attention_mask=text.attention_mask.long(), token_type_ids=text.token_type_ids)
        return model, call
    from mask_grounding_dino.model.checkpoint.hf import hf_config_to_kwargs
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO
    kwargs = hf_config_to_kwargs(config.to_dict())
    kwargs.update(has_mask=case["masks"], num_region_queries=100 if case["masks"] else 0)
    model = MaskGroundingDINO(**kwargs).eval()

    def call():
        return model(image, *text.as_tuple())
    return model, call


# ----------------------------------------------------------------------------- worker
def component_timer(model, impl: str, clock=time.perf_counter) -> HookTimer:
    """Inclusive time (``clock``) of the modules whose names match each component's pattern."""
    patterns = [(label, re.compile(p)) for label, p in COMPONENTS[impl]
                if p is not None and not p.startswith("method:")]
    patterns.append(("_deformable_layer", re.compile(DEFORMABLE_LAYER[impl])))
    timer = HookTimer(model, patterns, clock)
    # Modules called through methods other than forward (e.g. the mask head's
    # features/predict): "method:<module name>:<method>,<method>".
    for label, p in COMPONENTS[impl]:
        if p is not None and p.startswith("method:"):
            _, name, methods = p.split(":")
            module = model.get_submodule(name) if hasattr(model, name) and getattr(model, name) else None
            for method in (methods.split(",") if module is not None else []):
                setattr(module, method, timer.timed(label, getattr(module, method)))
    return timer


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def worker(case_name: str, impl: str, runs: int, threads: int, profile: bool, clock: str) -> dict:
    """Build, warm up, time ``runs`` forwards. ``clock``: wall time, or CPU time of the
    process (all threads): steadier on a shared machine, ~threads x wall when idle."""
    import torch

    torch.set_num_threads(threads)
    case = CASES[case_name]
    started = time.perf_counter()
    model, call = build(impl, case)
    build_s = time.perf_counter() - started
    timer = component_timer(model, impl, CLOCKS[clock]) if profile else None
    times, cpu_times = [], []
    with torch.inference_mode():
        call()                                      # warm-up (allocations, lazy inits)
        if timer:
            timer.reset()
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    chosen = times if clock == "wall" else cpu_times
    result = dict(case=case_name, impl=impl, clock=clock, wall_times=times, cpu_times=cpu_times,
                  median_s=statistics.median(chosen), median_wall_s=statistics.median(times),
                  build_s=build_s, threads=threads,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  params_m=sum(p.numel() for p in model.parameters()) / 1e6, torch=torch.__version__)
    if impl == "ours":
        from mask_grounding_dino.model.ms_deform_attn import resolve_backend
        result["msda_backend"] = resolve_backend("auto", torch.zeros(1))
    if timer:
        per_run = {label: total / runs for label, total in timer.totals.items()}
        components = {}
        for label, pattern in COMPONENTS[impl]:
            if pattern is None:   # the deformable layers minus their attention
                components[label] = (per_run.get("_deformable_layer", 0.0)
                                     - per_run.get("  of which deformable attn", 0.0))
            else:
                components[label] = per_run.get(label, 0.0)
        result["components"] = components
    return result


# ----------------------------------------------------------------------------- driver
def run_worker(case: str, impl: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if impl == "ours" and args.msda:
        env["MGDINO_MSDA_BACKEND"] = args.msda
    cmd = [sys.executable, __file__, "--worker", case, impl, "--runs", str(args.runs),
           "--threads", str(args.threads), "--clock", args.clock] + (["--profile"] if args.profile else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case}/{impl} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    parser.add_argument("--impls", default="peer,ours", help="peer, ours or both (comma-separated)")
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per case (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--profile", action="store_true", help="time per component (forward hooks)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall time, or process CPU time (steadier when the machine is shared)")
    parser.add_argument("--msda", choices=["gather", "grid_sample"], help="force our deformable-attention backend")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(*args.worker, args.runs, args.threads, args.profile, args.clock)))
        return 0

    results = []
    peer_cache: dict = {}
    impls = [i.strip() for i in args.impls.split(",")]
    for case in [c.strip() for c in args.cases.split(",")]:
        row = {}
        for impl in impls:
            # The peer has no mask branch: its detection-only run is the reference for both.
            key = (CASES[case]["config"], CASES[case]["size"]) if impl == "peer" else None
            if key is not None and key in peer_cache:
                row[impl] = dict(peer_cache[key], case=case)
            else:
                print(f"[{case}] {impl} ...", file=sys.stderr, flush=True)
                row[impl] = run_worker(case, impl, args)
                if key is not None:
                    peer_cache[key] = row[impl]
        results.append(row)
    print(report(results, args))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


def report(results: list[dict], args) -> str:
    lines = [f"Forward {args.clock} time, CPU, {args.threads} threads, median of {args.runs} (after 1 warm-up)", "",
             "| case | peer s | ours s | ours/peer | peer RSS MB | ours RSS MB | ours MSDA |",
             "|---|---|---|---|---|---|---|"]
    for row in results:
        peer, ours = row.get("peer"), row.get("ours")
        case = (ours or peer)["case"]
        ratio = f"{ours['median_s'] / peer['median_s']:.2f}" if peer and ours else "-"
        lines.append(f"| {case} | {peer['median_s']:.3f} | " if peer else f"| {case} | - | ")
        lines[-1] += (f"{ours['median_s']:.3f} | {ratio} | " if ours else "- | - | ")
        lines[-1] += (f"{peer['peak_rss_mb']:.0f} | " if peer else "- | ")
        lines[-1] += (f"{ours['peak_rss_mb']:.0f} | {ours.get('msda_backend', '-')} |" if ours else "- | - |")
    if args.profile:
        for row in results:
            for impl, res in row.items():
                comps = res.get("components")
                if not comps:
                    continue
                total = comps.get("total") or res["median_s"]
                lines += ["", f"Where the time goes: {res['case']} / {impl} ({args.clock} seconds per forward, "
                               "inclusive)"]
                for label, seconds in comps.items():
                    lines.append(f"  {label:<48} {seconds:8.3f}  {100 * seconds / total:5.1f}%")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
