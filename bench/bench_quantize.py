"""Quantisation: size, latency and accuracy of every backend against the float model, in one run.

Part 1 (``--spec``/``--checkpoint``, a trained model, e.g. the quickstart's): the float checkpoint
is quantised by each backend (default layer sets, calibration on the spec's train source with
captions), then every model is scored on ``dataset.val_data_sources`` (bbox / segm mAP@50 through
the evaluate pipeline) and timed (batch 1, median over images x repeats after warm-up, same
image tensors and thread count for all). Two float ONNX graphs are rows of their own:
TAO's form (text fixed at 256 tokens, ``modelopt.onnx``'s input) and the CPU INT8 graph's form (a
dynamic text axis, captions padded to the longest as PyTorch runs them; deformable attention as
GridSample). The fp32 PyTorch row
is the ``Predictor``'s path: the prompt's text features are computed once and cached, so its
latency is the image side only. The ONNX runner caches the same way (it cuts each graph into its
text side and the rest), so every row times the image side of a prompt seen before.

Part 2 (``--swin``): latency only, Swin-T + BERT-base (TAO's architecture, random weights) at
800x1333: float PyTorch against the CPU INT8 graph (``quantize.target: cpu``) calibrated on
random images with a caption.

    python bench/bench_quantize.py --spec run/spec.yaml --checkpoint run/train/model.pth --out /tmp/q
    python bench/bench_quantize.py --spec ... --checkpoint ... --backends cpu torchao --swin

Not a test: numbers depend on the machine and its load; compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: In this order: ModelOpt's ONNX quantisation patches onnxruntime's calibrators for the rest of the
#: process, so the CPU INT8 graph (onnxruntime's own calibration) is built before it.
BACKENDS = {
    "cpu": {"quantize.target": "cpu"},
    "torchao": {"quantize.backend": "torchao", "quantize.mode": "weight_only_ptq"},
    "modelopt.pytorch": {"quantize.backend": "modelopt.pytorch", "quantize.mode": "static_ptq"},
    "modelopt.onnx": {"quantize.backend": "modelopt.onnx", "quantize.mode": "static_ptq",
                      "quantize.backend_kwargs": {"high_precision_dtype": "fp32"}},
}


def _spec(args, out: str, overrides: dict):
    from mask_grounding_dino.config import load_spec

    probe = load_spec(args.spec)
    train = probe.dataset.train_data_sources[0]
    base = {"quantize.model_path": args.checkpoint, "quantize.results_dir": out, "quantize.device": "cpu",
            "quantize.num_calibration_images": args.calib, "quantize.report": False, "dataset.workers": 0,
            "dataset.quant_calibration_data_sources": {"image_dir": train.image_dir, "json_file": train.json_file,
                                                       "label_map": train.label_map}}
    return load_spec(args.spec, overrides={**base, **overrides})


def _measure(cfg, label: str, path: str, args) -> dict:
    from mask_grounding_dino.deploy.loading import open_backend
    from mask_grounding_dino.quantize.report import evaluate_backend, file_size_mb, latency_inputs, match_threads
    from mask_grounding_dino.quantize.report import time_backend

    backend = open_backend(path, model_section=cfg.model, device="cpu", key=label,
                           text_encoder_type=cfg.model.text_encoder_type)
    match_threads(backend)
    latency = time_backend(backend, latency_inputs(cfg, backend, args.images), warmup=2, repeats=args.repeats)
    metrics = evaluate_backend(cfg, backend)
    return {"model": label, "file": os.path.basename(path), "size_mb": file_size_mb(path), "latency_ms": latency,
            "bbox_map50": metrics.get("[bbox] val_mAP@50"), "segm_map50": metrics.get("[segm] val_mAP@50")}


def part1(args) -> list[dict]:
    from mask_grounding_dino.deploy.loading import load_torch_model
    from mask_grounding_dino.export import export_onnx
    from mask_grounding_dino.quantize.runner import quantize

    rows = []
    float_cfg = _spec(args, os.path.join(args.out, "float"), {})
    rows.append({**_measure(float_cfg, "fp32 PyTorch", args.checkpoint, args), "mode": "-"})
    print(json.dumps(rows[-1]), flush=True)
    onnx_path = os.path.join(args.out, "model_fp32.onnx")
    if {"modelopt.onnx", "cpu"} & set(args.backends):
        # Float graphs at the size the CPU graph is built for (the first calibration image's): TAO's form
        # (text fixed at 256 tokens) is modelopt.onnx's input; the CPU form (dynamic text axis, captions
        # padded to the longest) is the float baseline of the CPU INT8 graph.
        from mask_grounding_dino.quantize.calibration import CalibrationData
        from mask_grounding_dino.quantize.runner import _text_processor

        model = load_torch_model(args.checkpoint).model.eval()
        size = CalibrationData(float_cfg, _text_processor(model), limit=1).first_size()
        export_onnx(model, onnx_path, input_size=size)
        dynamic_path = os.path.join(args.out, "model_fp32_dynamic_text.onnx")
        export_onnx(model, dynamic_path, input_size=size, dynamic_text=True, msda="grid_sample")
        for label, path in (("fp32 ONNX (text 256)", onnx_path), ("fp32 ONNX", dynamic_path)):
            rows.append({**_measure(float_cfg, label, path, args), "mode": "-"})
            print(json.dumps(rows[-1]), flush=True)
    for name in sorted(args.backends, key=list(BACKENDS).index):
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        overrides = dict(BACKENDS[name])
        if name == "modelopt.onnx":
            overrides["quantize.model_path"] = onnx_path
        cfg = _spec(args, out, overrides)
        started = time.perf_counter()
        result = quantize(cfg, out)
        took = time.perf_counter() - started
        row = _measure(cfg, name, result.output, args)
        rows.append({**row, "mode": cfg.quantize.mode if name != "cpu" else "static int8 (onnxruntime)",
                     "quantize_s": took, "layers": len(result.plan.chosen)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def part2(args) -> list[dict]:
    """Swin-T + BERT-base at 800x1333, random weights: float PyTorch vs the CPU INT8 graph."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from transformers import GroundingDinoConfig

    from mask_grounding_dino.export import export_onnx
    from mask_grounding_dino.model.checkpoint.hf import hf_config_to_kwargs
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO
    from mask_grounding_dino.quantize.calibration import CalibrationBatch
    from mask_grounding_dino.quantize.cpu_int8 import quantize_graph
    from mask_grounding_dino.quantize.layers import model_layers, plan_layers
    from mask_grounding_dino.quantize.onnx_nodes import module_of_nodes
    from mask_grounding_dino.quantize.onnx_session import session_options
    from mask_grounding_dino.text import TextProcessor

    torch.manual_seed(0)
    kwargs = hf_config_to_kwargs(GroundingDinoConfig().to_dict())
    kwargs.update(has_mask=True, num_region_queries=100, load_text_weights=False)
    model = MaskGroundingDINO(**kwargs).eval()
    size = (800, 1333)
    caption = "person . car . dog . traffic light ."
    processor = TextProcessor("bert-base-uncased", 256)

    class Data:                                  # the calibration batches: random images, one caption
        text_processor = processor

        def __iter__(self):
            for seed in range(args.swin_calib):
                image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
                yield CalibrationBatch(image, None, processor([caption]), [caption])

    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(100))
    text = processor([caption])

    def timed(call) -> float:
        call()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    with torch.inference_mode():
        fp32_ms = timed(lambda: model(image, *text.as_tuple()))
    rows = [{"model": "Swin-T fp32 PyTorch 800x1333", "latency_ms": fp32_ms}]
    print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        float_path = os.path.join(tmp, "swin_fp32.onnx")
        export = export_onnx(model, float_path, input_size=size, dynamic_batch=False, dynamic_text=True,
                             msda="grid_sample")
        layers = model_layers(model)
        plan = plan_layers(layers, mode="static_ptq", supported=("Linear", "Conv2d"), backend="cpu")
        owner = module_of_nodes(onnx.load(float_path, load_external_data=False).graph, [n for n, _, _ in layers])
        int8_path = os.path.join(args.out, "swin_int8.onnx")
        quantize_graph(float_path, plan, owner, Data(), int8_path, algorithm="minmax", text_len=None,
                       metadata=export.metadata)
        feed_text = processor([caption])          # the dynamic text axis: the caption's own length
        from mask_grounding_dino.export.io_names import INPUT_NAMES

        feed = dict(zip(INPUT_NAMES, [image.numpy(), *(t.numpy() for t in feed_text.as_tuple())]))
        for label, path in (("Swin-T fp32 ONNX 800x1333", float_path), ("Swin-T CPU INT8 800x1333", int8_path)):
            options = session_options(path)       # the options OnnxBackend runs this file with
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            rows.append({"model": label, "latency_ms": timed(lambda: session.run(None, feed)),
                         "size_mb": os.path.getsize(path) / 2**20})
            print(json.dumps(rows[-1]), flush=True)
            del session
    return rows


def table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["model"].startswith(("fp32 PyTorch", "Swin-T fp32 PyTorch"))), None)
    onnx_base = next((r for r in rows if r["model"] in ("fp32 ONNX", "Swin-T fp32 ONNX 800x1333")), None)
    head = ("| model | mode | size MB | latency ms | bbox mAP@50 | segm mAP@50 | latency vs fp32 PyTorch "
            "| latency vs fp32 ONNX | size vs fp32 |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        ratio = r["latency_ms"] / base["latency_ms"] if base else None
        runs_onnx = r.get("file", "").endswith(".onnx") or "ONNX" in r["model"] or "INT8" in r["model"]
        onnx_ratio = r["latency_ms"] / onnx_base["latency_ms"] if onnx_base and runs_onnx else None
        size = r.get("size_mb") / base["size_mb"] if base and base.get("size_mb") and r.get("size_mb") else None
        lines.append(f"| {r['model']} | {r.get('mode', '-')} | {fmt(r.get('size_mb'), 1)} | {fmt(r['latency_ms'], 1)} "
                     f"| {fmt(r.get('bbox_map50'))} | {fmt(r.get('segm_map50'))} | {fmt(ratio, 2)} | {fmt(onnx_ratio, 2)} "
                     f"| {fmt(size, 2)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="the trained model's spec (val + train sources)")
    parser.add_argument("--checkpoint", help="the float checkpoint")
    parser.add_argument("--out", required=True)
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib", type=int, default=32, help="calibration images (part 1)")
    parser.add_argument("--images", type=int, default=4, help="timed validation images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--swin", action="store_true", help="also part 2 (Swin-T 800x1333 latency)")
    parser.add_argument("--swin-calib", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    sections = []
    if args.swin:  # first: part 1's modelopt.onnx patches onnxruntime's calibrators for the rest of the process
        rows = part2(args)
        sections.append(table(rows))
        json.dump(rows, open(os.path.join(args.out, "bench_quantize_swin.json"), "w"), indent=1)
    if args.spec and args.checkpoint:
        rows = part1(args)
        sections.insert(0, table(rows))
        json.dump(rows, open(os.path.join(args.out, "bench_quantize.json"), "w"), indent=1)
    text = "\n\n".join(sections) + f"\n\n{args.threads} threads; load average {os.getloadavg()[0]:.1f}\n"
    with open(os.path.join(args.out, "bench_quantize.md"), "w") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
